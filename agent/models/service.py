"""The agent's one infer service: sessions, serving versions, the batcher and the inline budget.

Both ways a request reaches the kit (the full `/v1/models/{name}/infer` route and the short
path in `agent/api/fast_infer.py`) parse it, hand it here and render what comes back. This is
the only place that decides how a request runs:

- **inline**, on the event loop itself, when one client is asking (no other connection sent an
  infer request within `SHARED_S`, none is running off the loop), the body is small
  (`INLINE_MAX_BYTES`), the model is loaded and its runs take at most `INLINE_BUDGET_S`:
  waking a thread and waking the loop again cost ~0.2 ms on a quiet kit, more than a small
  classifier's whole run, and a lone client waits for every one of them. On a busy kit each
  wake-up costs more (the waker is often preempted while it holds the GIL), so a run slowed
  by other work must not send the next ones to a thread: the estimate of a model's run time
  falls at once to a quicker run and climbs back only gradually (`_RunTimes`);
- **batched**, on the batcher's workers (batcher.py), when several clients ask at once,
  batching is on and the request can be batched (an image, a loaded model with a dynamic
  batch dimension);
- **in a thread** of its own otherwise, so the loop keeps reading and answering the others
  while a model runs or loads.

A lone client is never batched: it has nobody to share a batch with, and its runs alone keep
the inline rule's timings current.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Settings
from agent.metrics.infer_counts import ANSWERED, InferCounter, outcome_of
from agent.metrics.timings import OUTPUT, QUEUE, InferTimes, Stopwatch, timing
from agent.models.store import ModelStore
from agent.wire import InferResult, Manifest

if TYPE_CHECKING:
    from agent.models.batcher import ImageBatcher, Ticket
    from agent.models.serving import ServingModels
    from agent.models.sessions import SessionCache

__all__ = ["INLINE_BUDGET_S", "INLINE_MAX_BYTES", "SHARED_S", "Answer", "InferCall", "InferService"]

INLINE_BUDGET_S = 0.002
INLINE_MAX_BYTES = 64 * 1024  # a PNG or JPEG this size decodes within a few milliseconds
SHARED_S = 0.05

Answer = tuple[Manifest, InferResult | None, dict[str, Any] | None]  # a result, or a raw model's outputs


@dataclass(frozen=True)
class InferCall:
    """One parsed infer request."""

    name: str
    version: str | None
    body: bytes
    content_type: str | None
    top_k: int
    watch: Stopwatch | None = None  # the request's stages, when they are being timed


class InferService:
    """Owns what serving needs; made once per agent, used from the event loop and worker threads."""

    def __init__(self, settings: Settings, store: ModelStore) -> None:
        self._settings, self._store = settings, store
        self._sessions: SessionCache | None = None
        self._serving: ServingModels | None = None
        self._batcher: ImageBatcher | None = None
        self._away = 0  # requests running off the loop now (a thread, a batch)
        self._run_s = _RunTimes()
        self._last_client: Any = None  # the connection that asked last, and when
        self._last_seen = 0.0
        self._shared_until = 0.0  # monotonic time until which the kit counts as shared
        self.times = InferTimes()  # where answered requests spent their time, per model
        self.counts = InferCounter()  # requests by outcome, per model version

    @property
    def sessions(self) -> SessionCache:
        """Made on first use: ONNX Runtime is imported only once a model is run."""
        if self._sessions is None:
            from agent.models.sessions import SessionCache

            self._sessions = SessionCache(self._settings.session_cache, None)
        return self._sessions

    @property
    def serving(self) -> ServingModels:
        """The serving version of each model, re-read from disk only when it changed there."""
        if self._serving is None:
            from agent.models.serving import ServingModels

            self._serving = ServingModels(self._store)
        return self._serving

    @property
    def batcher(self) -> ImageBatcher | None:
        """The batcher, made on first use; None when `infer_batch_window_ms` is 0. Asked on the
        event loop only, so two are never made."""
        window_ms = self._settings.infer_batch_window_ms
        if window_ms <= 0:
            return None
        if self._batcher is None:
            from agent.models.batcher import Batcher

            self._batcher = Batcher(window_ms / 1000)
        return self._batcher

    def batch_counts(self) -> tuple[int, int] | None:
        """(batches run, requests batched) for /metrics; None while no batcher was needed."""
        batcher = self._batcher
        return None if batcher is None else (batcher.batches, batcher.items)

    def forget(self, model_path: Path) -> None:
        """A model file was deleted or replaced: its sessions go."""
        if self._sessions is not None:
            self._sessions.evict(model_path)

    def coming(self, name: str) -> AbstractContextManager[Ticket | None]:
        """Around reading a request's body: the batcher may wait for a request on its way. Only
        while the kit is shared: a lone client is never batched, and a ticket costs it two
        turns of the batcher's lock."""
        batcher = self.batcher if time.monotonic() < self._shared_until else None
        return nullcontext() if batcher is None else batcher.coming(name)

    async def answer(self, call: InferCall, client: Any, ticket: Ticket | None = None) -> Answer:
        """The answer to `call` from connection `client`, run where the rule above says, counted
        by outcome for the version that ran (`counts`: on the loop, one increment)."""
        try:
            alone = not self._note_client(client)
            key = (call.name, call.version)
            if alone and not self._away and len(call.body) <= INLINE_MAX_BYTES and self._run_s.quick(key):
                _close(ticket)  # not for the batcher: it must not wait for this one
                started = time.perf_counter()
                answer = self.run_loaded(call)
                if answer is not None:
                    self._run_s.note(key, time.perf_counter() - started)
                    self.counts.add(call.name, answer[0].version, ANSWERED)
                    return answer
            answer = await self._off_loop(call, alone, ticket)
        except Exception as exc:
            self._count_error(call, exc)
            raise
        self.counts.add(call.name, answer[0].version, ANSWERED)
        return answer

    def _count_error(self, call: InferCall, exc: Exception) -> None:
        """Count under the version asked or served; a model or version not installed is not
        counted, so hostile names never grow the counts."""
        try:
            manifest, _ = self.serving.active(call.name, call.version)
        except Exception:
            return
        self.counts.add(call.name, manifest.version, outcome_of(exc))

    async def _off_loop(self, call: InferCall, alone: bool, ticket: Ticket | None) -> Answer:
        """The answer from a batch or a thread of its own."""
        self._away += 1
        try:
            batcher = self.batcher
            if batcher is not None and not alone:
                batched = await self._batched(batcher, call, ticket)
                if batched is not None:
                    if call.watch is not None:
                        call.watch.lap(QUEUE)  # the loop's turn to take the answer back
                    return batched
            _close(ticket)
            # not to_thread: a lone request has no context worth copying to the worker
            answer = await asyncio.get_running_loop().run_in_executor(None, self._timed, call)
            if call.watch is not None:
                call.watch.lap(QUEUE)  # the loop's turn to take the answer back
            return answer
        finally:
            self._away -= 1

    def run(self, call: InferCall) -> Answer:
        """The answer, loading the model's session if it must. In a worker thread: it may read
        files and it computes."""
        manifest, path = self.serving.active(call.name, call.version)
        return _answer(self.sessions.get(path, manifest.sha256), manifest, call)

    def run_loaded(self, call: InferCall) -> Answer | None:
        """As `run`, or None when the model's session is not loaded: never waits for a load."""
        manifest, path = self.serving.active(call.name, call.version)
        session = self.sessions.cached(path, manifest.sha256)
        return None if session is None else _answer(session, manifest, call)

    def _timed(self, call: InferCall) -> Answer:
        if call.watch is not None:
            call.watch.lap(QUEUE)  # for a worker thread
        started = time.perf_counter()
        answer = self.run(call)
        self._run_s.note((call.name, call.version), time.perf_counter() - started)
        return answer

    async def _batched(self, batcher: ImageBatcher, call: InferCall, ticket: Ticket | None) -> Answer | None:
        """The answer through the batcher, or None when the request must run alone: a tensor,
        a raw model, a fixed batch dimension, or a model not loaded yet (a thread loads it;
        the requests after it are batched)."""
        try:
            manifest, path = self.serving.active(call.name, call.version)
            session = self.sessions.cached(path, manifest.sha256)
            if session is None:
                return None
            from agent.models.batcher import async_infer_image

            result = await async_infer_image(
                batcher, session, manifest, call.body, call.content_type, call.top_k, ticket, call.watch
            )
            return None if result is None else (manifest, result, None)
        finally:
            _close(ticket)  # queued by now, or not for the batcher: it must not wait for this one

    def _note_client(self, client: Any) -> bool:
        """True while requests come from more than one connection (one within SHARED_S of another)."""
        now = time.monotonic()
        if client != self._last_client and now - self._last_seen < SHARED_S:
            self._shared_until = now + SHARED_S
        self._last_client, self._last_seen = client, now
        return now < self._shared_until


class _RunTimes:
    """How long each model's runs take (by name and version asked), for the inline rule.

    Quick to fall, slow to rise: a run slowed by other work on the kit weighs an eighth, so it
    takes a run of slow ones (a model that really got slower, ~7 over the budget for a model at
    a quarter of it) to move the requests after it to a thread. A model never timed is not quick.
    """

    RISE = 1 / 8

    def __init__(self) -> None:
        self._seconds: dict[tuple[str, str | None], float] = {}

    def quick(self, key: tuple[str, str | None]) -> bool:
        return self._seconds.get(key, INLINE_BUDGET_S + 1) <= INLINE_BUDGET_S

    def note(self, key: tuple[str, str | None], seconds: float) -> None:
        known = self._seconds.get(key)
        if known is None or seconds <= known:
            self._seconds[key] = seconds
        else:
            self._seconds[key] = known + (seconds - known) * self.RISE


def _close(ticket: Ticket | None) -> None:
    if ticket is not None:
        ticket.close()


def _answer(session: Any, manifest: Manifest, call: InferCall) -> Answer:
    from agent.models.infer import run_inference

    watch = call.watch
    if watch is None:
        result, tensors = run_inference(session, manifest, call.body, call.content_type, call.top_k)
        return manifest, result, tensors
    watch.lap(QUEUE)  # finding the session (loading it, the first time) is waiting too
    previous = timing(watch)  # run_inference marks decode, prepare and infer on this thread
    try:
        result, tensors = run_inference(session, manifest, call.body, call.content_type, call.top_k)
    finally:
        timing(previous)
    watch.lap(OUTPUT)
    return manifest, result, tensors
