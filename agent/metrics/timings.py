"""A per-request stopwatch over the infer stages, and per-model sums of them for /metrics.

Cheap on purpose, since it runs on every request: one small object per request holding a
list of seven floats, `perf_counter` deltas, and sums kept in one list per model. The code
that runs the model (`models/infer.py`, on whichever thread runs it) marks its stages with
`lap`, which finds the request's stopwatch through a thread-local; a run outside a request
(a batch job, a stream) has none and `lap` does nothing.
"""

from __future__ import annotations

import threading
from time import perf_counter

from agent.wire.timings import INFER_STAGES, InferTimings

__all__ = [
    "DECODE",
    "INFER",
    "OUTPUT",
    "PREPARE",
    "QUEUE",
    "READ",
    "WRITE",
    "InferTimes",
    "Stopwatch",
    "lap",
    "timing",
]

QUEUE, READ, DECODE, PREPARE, INFER, OUTPUT, WRITE = range(len(INFER_STAGES))
_local = threading.local()


class Stopwatch:
    """One request's time by stage. Used by one thread at a time (the loop, then a worker)."""

    __slots__ = ("last", "spent", "started")

    def __init__(self) -> None:
        self.started = self.last = perf_counter()
        self.spent = [0.0] * len(INFER_STAGES)

    def lap(self, stage: int) -> None:
        """The time since the previous lap was spent in `stage`."""
        now = perf_counter()
        self.spent[stage] += now - self.last
        self.last = now

    def lived(self, other: Stopwatch) -> None:
        """This request lived `other`'s stages too (the batch it ran in): it waited from its
        own last lap until the batch started, then spent each of the batch's stages."""
        self.spent[QUEUE] += max(other.started - self.last, 0.0)
        for stage, seconds in enumerate(other.spent):
            self.spent[stage] += seconds
        self.last = other.last


def lap(stage: int) -> None:
    """A lap of the stopwatch this thread is timing, if any."""
    watch: Stopwatch | None = getattr(_local, "watch", None)
    if watch is not None:
        watch.lap(stage)


def timing(watch: Stopwatch | None) -> Stopwatch | None:
    """Time `watch` on this thread from now on (None: none); returns the one timed before."""
    previous: Stopwatch | None = getattr(_local, "watch", None)
    _local.watch = watch
    return previous


class InferTimes:
    """Sums per model of the stopwatches of answered requests. Added to on the event loop
    only; read from any thread (a row is copied whole before it is shown)."""

    def __init__(self) -> None:
        self._rows: dict[str, list[float]] = {}  # [requests, total, *stages]

    def add(self, model: str, watch: Stopwatch) -> None:
        row = self._rows.get(model)
        if row is None:
            row = self._rows[model] = [0.0] * (2 + len(INFER_STAGES))
        row[0] += 1
        row[1] += watch.last - watch.started
        for stage, seconds in enumerate(watch.spent, start=2):
            row[stage] += seconds

    def snapshot(self) -> list[InferTimings]:
        rows = [(model, list(row)) for model, row in list(self._rows.items())]
        return [
            InferTimings.model_validate(
                {"model": model, "requests": int(row[0]), "total_s": row[1]}
                | {f"{stage}_s": row[2 + i] for i, stage in enumerate(INFER_STAGES)}
            )
            for model, row in sorted(rows)
        ]
