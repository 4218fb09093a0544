"""Dynamic batching for the infer API: concurrent requests on one model run as one batch.

Requests wait on the event loop; each model being asked has `WORKERS` worker threads. A
worker takes every request queued for its model (up to `max_batch`), prepares each one
(decodes and resizes the image: an error there is that request's alone), runs them through
the model as one batch and hands all the answers back to the loop in one call. While one
worker runs a batch the next one queues up, so under load batches form by themselves,
without waiting.

A worker that finds a request waits for others only while more are on their way
(`coming`: a request whose body is still being read), and never longer than the window
after the first one queued: a lone request runs at once.

Why workers per model and not the route's thread per request: on a small CPU kit the
per-request costs around a small model's run, not the run, are what limit throughput.
Here a batch of n pays one wake-up of a thread and one of the loop, not n of each; the
preparing and the answers' shaping run on a worker instead of n threads taking the GIL in
turns; and the model runs once. Two workers taking turns: one takes and prepares a batch
while the other runs its own in ONNX Runtime (which lets go of the GIL). Left to race for
the queue, the worker that finished first took everything and the other starved waiting for
the GIL, leaving one worker as the bottleneck at 32 clients (benchmarks/batching.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np

from agent.metrics.timings import DECODE, OUTPUT, PREPARE, QUEUE, Stopwatch, timing
from agent.models.infer import dynamic_batch, is_tensor, run_prepared
from agent.toolkit.images import Placement, decode_image, from_pixels, to_pixels
from agent.wire import InferResult, Manifest

__all__ = ["Batcher", "ImageBatcher", "Ticket", "async_infer_image"]

Raw = TypeVar("Raw")
In = TypeVar("In")
Out = TypeVar("Out")
Run = Callable[[Sequence[In]], Sequence[Out]]
Key = tuple[str, ...]  # (model name, …): tickets count by the name alone
LINGER_S = 2.0  # an idle worker waits this long for more work before its thread ends
WORKERS = 2


@dataclass
class _Waiting(Generic[Raw, Out]):
    item: Raw
    future: asyncio.Future[Out]
    loop: asyncio.AbstractEventLoop
    since: float


@dataclass
class _Queue(Generic[Raw, In, Out]):
    prepare: Callable[[Raw], In]
    run: Run[In, Out]
    arrived: list[_Waiting[Raw, Out]] = field(default_factory=list)
    working: int = 0  # requests that workers took and have not answered yet
    turn: threading.Lock = field(default_factory=threading.Lock)  # held while taking and preparing
    closed: bool = False  # its threads have ended or are ending: a new request makes a new queue

    def idle(self) -> bool:
        return not (self.arrived or self.working)


class Ticket:
    """A request on its way to a model: the worker may wait for it. Use as a context
    manager around reading the body; `submit` takes it over when the request queues."""

    def __init__(self, batcher: Batcher[Any, Any, Any], name: str) -> None:
        self._batcher, self.name, self._open = batcher, name, True

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """No longer on its way (it queued, failed or went another way); once is enough."""
        if self._open:
            self._open = False
            self._batcher._arrived(self.name)


class Batcher(Generic[Raw, In, Out]):
    """Batches of the requests queued under one key (the same model, version and file)."""

    def __init__(
        self, window_s: float, max_batch: int = 32, linger_s: float = LINGER_S, workers: int = WORKERS
    ) -> None:
        self.window_s, self.max_batch, self.linger_s, self.workers = window_s, max_batch, linger_s, workers
        self._cond = threading.Condition()
        self._queues: dict[Key, _Queue[Raw, In, Out]] = {}
        self._coming: Counter[str] = Counter()
        self.batches = self.items = 0  # counters, for tests and benchmarks

    def coming(self, name: str) -> Ticket:
        """A ticket for a request on its way to model `name`."""
        with self._cond:
            self._coming[name] += 1
        return Ticket(self, name)

    def _arrived(self, name: str) -> None:
        with self._cond:
            self._coming[name] -= 1
            if not self._coming[name]:
                del self._coming[name]
            self._cond.notify_all()

    async def submit(
        self,
        key: Key,
        item: Raw,
        prepare: Callable[[Raw], In],
        run: Run[In, Out],
        ticket: Ticket | None = None,
    ) -> Out:
        """The answer for `item`: `prepare(item)`, then `run(prepared items)` with whatever else
        was queued for the same key. Every request of a key must pass the same (equivalent)
        `prepare` and `run`: the key's workers use the first one's."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(prepare, run)
                for _ in range(self.workers):
                    threading.Thread(
                        target=self._guarded, args=(key, queue), name=f"batch-{key[0]}", daemon=True
                    ).start()
            queue.arrived.append(_Waiting(item, future, loop, time.monotonic()))
            if ticket is not None:
                ticket.close()  # the lock is re-entrant: it counts as arrived with the queueing
            self._cond.notify_all()
        return await future

    def _guarded(self, key: Key, queue: _Queue[Raw, In, Out]) -> None:
        try:
            self._work(key, queue)
        except BaseException as exc:  # a bug here must not leave requests waiting for ever
            with self._cond:
                self._close(key, queue)
                stranded, queue.arrived = queue.arrived, []
            _settle([(waiting, exc) for waiting in stranded])
            raise

    def _work(self, key: Key, queue: _Queue[Raw, In, Out]) -> None:
        """Take what arrived and prepare it, then run it as one batch and answer; over and over.
        One worker takes and prepares at a time, while the other runs its batch."""
        while True:
            with queue.turn:
                taken = self._take(key, queue)
                if not taken:
                    return
                try:
                    ready, failed = _prepared(queue, taken)
                except BaseException as exc:
                    self._done(queue, [(waiting, exc) for waiting in taken])
                    raise
            try:
                results = _run_isolated(queue.run, [prepared for _, prepared in ready]) if ready else []
            except BaseException as exc:
                self._done(queue, [(waiting, exc) for waiting in taken])
                raise
            self._done(
                queue,
                failed + [(waiting, result) for (waiting, _), result in zip(ready, results, strict=True)],
            )

    def _done(
        self, queue: _Queue[Raw, In, Out], answers: Sequence[tuple[_Waiting[Raw, Out], Out | BaseException]]
    ) -> None:
        with self._cond:  # counted before answering: a caller that got its answer sees it counted
            queue.working -= len(answers)
            self.batches, self.items = self.batches + 1, self.items + len(answers)
        _settle(answers)

    def _take(self, key: Key, queue: _Queue[Raw, In, Out]) -> list[_Waiting[Raw, Out]]:
        """The next batch; empty when the queue closed or stayed idle `linger_s`."""
        with self._cond:
            if not self._wait(key, queue):
                return []
            deadline = queue.arrived[0].since + self.window_s
            while (
                len(queue.arrived) < self.max_batch
                and self._coming[key[0]]
                and (left := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(left)
            taken = queue.arrived[: self.max_batch]
            del queue.arrived[: self.max_batch]
            queue.working += len(taken)
            return taken

    def _wait(self, key: Key, queue: _Queue[Raw, In, Out]) -> bool:
        """Under the lock: wait for a request; False when the queue closed or stayed idle `linger_s`."""
        while not queue.closed:
            if self._cond.wait_for(lambda: queue.arrived or queue.closed, self.linger_s) and not queue.closed:
                return True
            if queue.idle():
                self._close(key, queue)
        return False

    def _close(self, key: Key, queue: _Queue[Raw, In, Out]) -> None:
        queue.closed = True
        if self._queues.get(key) is queue:
            del self._queues[key]
        self._cond.notify_all()


def _prepared(
    queue: _Queue[Raw, In, Out], taken: Sequence[_Waiting[Raw, Out]]
) -> tuple[list[tuple[_Waiting[Raw, Out], In]], list[tuple[_Waiting[Raw, Out], Out | BaseException]]]:
    """(each request with its prepared item, each request that failed with its error)."""
    ready: list[tuple[_Waiting[Raw, Out], In]] = []
    failed: list[tuple[_Waiting[Raw, Out], Out | BaseException]] = []
    for waiting in taken:
        try:
            ready.append((waiting, queue.prepare(waiting.item)))
        except Exception as exc:
            failed.append((waiting, exc))
    return ready, failed


def _run_isolated(run: Run[In, Out], items: Sequence[In]) -> list[Out | BaseException]:
    """Answers for all; if the batch fails, each item alone, so only a bad one gets an error."""
    try:
        results = list(run(items))
        if len(results) != len(items):
            raise RuntimeError(f"a batch of {len(items)} gave {len(results)} answers")
        return list(results)
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    answers: list[Out | BaseException] = []
    for item in items:
        try:
            answers.append(run([item])[0])
        except Exception as exc:
            answers.append(exc)
    return answers


def _settle(pairs: Sequence[tuple[_Waiting[Any, Out], Out | BaseException]]) -> None:
    """Hand the answers to their loops: one wake-up per loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Out], Out | BaseException]]] = {}
    for waiting, answer in pairs:
        by_loop.setdefault(waiting.loop, []).append((waiting.future, answer))
    for loop, answers in by_loop.items():
        with suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: Sequence[tuple[asyncio.Future[Out], Out | BaseException]]) -> None:
    for future, answer in answers:
        if future.done():  # the request was cancelled meanwhile
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


_Image = tuple[bytes, str | None, int, Stopwatch | None]  # body, content type, top_k, its stages
_Prepared = tuple[np.ndarray, Placement, int, Stopwatch | None]  # resized pixels, where the image
# sits in them, top_k, the request's stages
ImageBatcher = Batcher[_Image, _Prepared, InferResult]


async def async_infer_image(
    batcher: ImageBatcher,
    session: Any,
    manifest: Manifest,
    payload: bytes,
    content_type: str | None,
    top_k: int,
    ticket: Ticket | None = None,
    watch: Stopwatch | None = None,
) -> InferResult | None:
    """An image request's answer through the batcher; None when it cannot be batched (a tensor,
    a raw model, or a model whose batch dimension is fixed) and must run alone. `watch`, when
    given, is the request's: it gets its own queue, decode and prepare, and its batch's run."""
    if is_tensor(payload, content_type) or manifest.task == "raw" or not dynamic_batch(session, manifest):
        return None

    def prepare(item: _Image) -> _Prepared:
        body, declared_type, k, watch = item
        if watch is None:
            pixels, placement = to_pixels(decode_image(body, declared_type), manifest.input)
            return pixels, placement, k, None
        watch.lap(QUEUE)  # in the batcher's queue, until a worker took it
        image = decode_image(body, declared_type)
        watch.lap(DECODE)
        pixels, placement = to_pixels(image, manifest.input)
        watch.lap(PREPARE)
        return pixels, placement, k, watch

    def run(items: Sequence[_Prepared]) -> list[InferResult]:
        batch_watch = Stopwatch()  # the batch's stages, which every request in it lived
        pixels = np.stack([pixels for pixels, _, _, _ in items])
        batch = from_pixels(pixels, manifest.input, manifest.normalisation)
        previous = timing(batch_watch)  # run_prepared marks prepare and infer on this thread
        try:
            results = run_prepared(
                session, manifest, batch, [at for _, at, _, _ in items], max(k for _, _, k, _ in items)
            )
        finally:
            timing(previous)
        for result, (_, _, k, _) in zip(results, items, strict=True):
            if result.classes is not None:
                result.classes = result.classes[:k]
        batch_watch.lap(OUTPUT)
        for _, _, _, watch in items:
            if watch is not None:
                watch.lived(batch_watch)
        return results

    key = (manifest.name, manifest.version, manifest.sha256)
    return await batcher.submit(key, (payload, content_type, top_k, watch), prepare, run, ticket)
