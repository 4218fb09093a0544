"""Dynamic batching for the infer API: concurrent requests on one model run as one batch.

Each request keeps its single thread hop (`asyncio.to_thread` in the route): it prepares its
own input in its thread, then joins the open batch for its model. The first to join leads:
it waits until every request in flight for that model has joined, the batch is full, or the
window ends — never longer than the window, and not at all when it is alone — then runs the
batch and hands each member its own answer. A batch that fails is run again one by one, so
an error reaches only the request that caused it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PIL import Image

from agent.api.schemas import InferResult, Manifest

__all__ = ["Batcher", "ImageBatcher", "infer_image"]

In = TypeVar("In")
Out = TypeVar("Out")
Run = Callable[[Sequence[In]], Sequence[Out]]


@dataclass
class _Batch(Generic[In, Out]):
    items: list[In] = field(default_factory=list)
    results: list[Out | BaseException] = field(default_factory=list)
    closed: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Batcher(Generic[In, Out]):
    def __init__(self, window_s: float, max_batch: int = 32) -> None:
        self.window_s, self.max_batch = window_s, max_batch
        self._cond = threading.Condition()
        self._open: dict[Hashable, _Batch[In, Out]] = {}
        self._in_flight: Counter[Hashable] = Counter()
        self.batches = self.items = 0  # counters, for tests and benchmarks

    def submit(self, key: Hashable, prepare: Callable[[], In], run: Run[In, Out]) -> Out:
        """`run(items)` once for this request and those that join it; its own answer back.

        `prepare` runs in the caller's thread first; its errors are the caller's alone.
        """
        with self._cond:
            self._in_flight[key] += 1
        try:
            item = prepare()
        except BaseException:
            self._leave(key)
            raise
        batch, index, leader = self._join(key, item)
        if leader:
            self._lead(key, batch, run)
        else:
            batch.done.wait()
        result = batch.results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    def _join(self, key: Hashable, item: In) -> tuple[_Batch[In, Out], int, bool]:
        with self._cond:
            self._in_flight[key] -= 1
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            batch.items.append(item)
            if len(batch.items) >= self.max_batch:
                self._close(key, batch)
            self._cond.notify_all()
            return batch, len(batch.items) - 1, leader

    def _leave(self, key: Hashable) -> None:
        with self._cond:
            self._in_flight[key] -= 1
            self._cond.notify_all()

    def _lead(self, key: Hashable, batch: _Batch[In, Out], run: Run[In, Out]) -> None:
        deadline = time.monotonic() + self.window_s
        with self._cond:
            # wait only for requests already on their way: a lone request runs at once
            while not batch.closed and self._in_flight[key] > 0 and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            self._close(key, batch)
            if not self._in_flight[key]:
                del self._in_flight[key]
        batch.results = _run_isolated(run, batch.items)
        with self._cond:
            self.batches, self.items = self.batches + 1, self.items + len(batch.items)
        batch.done.set()

    def _close(self, key: Hashable, batch: _Batch[In, Out]) -> None:
        batch.closed = True
        if self._open.get(key) is batch:
            del self._open[key]


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


ImageBatcher = Batcher[tuple[Image.Image, int], InferResult]


def infer_image(batcher: ImageBatcher, session: Any, manifest: Manifest, payload: bytes,
                content_type: str | None, top_k: int) -> InferResult | None:
    """An image request's answer through the batcher; None when it cannot be batched (a tensor,
    a raw model, or a model whose batch dimension is fixed) and must run alone."""
    from agent.models.infer import NPY_TYPES, dynamic_batch, run_batch
    from agent.models.preprocess import NPY_MAGIC, decode_image, media_type

    declared = media_type(content_type)
    tensor = declared in NPY_TYPES or (declared in (None, "application/octet-stream")
                                       and payload.startswith(NPY_MAGIC))
    if tensor or manifest.task == "raw" or not dynamic_batch(session, manifest):
        return None

    def run(items: Sequence[tuple[Image.Image, int]]) -> list[InferResult]:
        results = run_batch(session, manifest, [image for image, _ in items], max(k for _, k in items))
        for result, (_, k) in zip(results, items, strict=True):
            if result.classes is not None:
                result.classes = result.classes[:k]
        return results

    key = (manifest.name, manifest.version, manifest.sha256)
    return batcher.submit(key, lambda: (decode_image(payload, content_type), top_k), run)

