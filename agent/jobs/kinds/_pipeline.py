"""The path batch-infer and evaluate share: each of the job's threads takes the next few
images, decodes and prepares them and runs them through the model as one batch, and the
answers come out in folder order.

Answers are those of one-at-a-time inference: the same preprocessing as /infer, one row per
image in order, and an unreadable image is an error row, not a failed job.

Why whole batches side by side, not decode threads feeding one run that uses every thread:
the session has one intra-op thread and up to `threads` runs go at once (an ONNX Runtime
session takes concurrent runs), so no thread waits for another inside a run, and the job
never runs more threads than it holds. On a kit doing other work, Linux shares the cores
between programs first: a 2-thread job beside one busy program gets about one core, and a
run split over two threads then waits at every operator for the half that is not running
(benchmarks/batch_infer.py prints the cores each figure got).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import Refusal
from agent.jobs.kinds._images import Item, prepare
from agent.jobs.kinds._model import fixed_batch, load
from agent.jobs.report import Reporter
from agent.models.infer import MAX_BATCH, run_prepared
from agent.toolkit.images import stack
from agent.wire import InferResult, Manifest

# model input of the runs under way together: large inputs get smaller batches, and a job
# holding more threads smaller ones too, so memory stays bounded whatever the threads
BATCH_BYTES = 8 << 20


@dataclass
class Answer:
    path: Path
    result: InferResult | None  # None when the image could not be read
    error: str | None = None


def batch_size(manifest: Manifest, runs: int = 1) -> int:
    """Images per run for a model with a free batch dimension, when `runs` go at once:
    MAX_BATCH, fewer when their inputs together would pass BATCH_BYTES (a 640×640 detector
    takes one image per run)."""
    spec = manifest.input
    one = spec.height * spec.width * spec.channels * np.dtype(spec.dtype).itemsize
    return max(1, min(MAX_BATCH, BATCH_BYTES // (one * max(runs, 1))))


class Pipeline:
    def __init__(self, spec: dict[str, Any], report: Reporter) -> None:
        self.report = report
        self.threads = max(int(spec["threads"]), 1)  # runs at once, each on one thread
        self.manifest, self.session = load(spec, report, 1, spinning=False)
        fixed = fixed_batch(self.session, self.manifest) is not None
        self.batch = 1 if fixed else batch_size(self.manifest, self.threads)
        self._lock = threading.Lock()
        self._fell_back: str | None = None  # why runs went to one image, until it is logged

    def answers(self, paths: Sequence[Path], top_k: int) -> Generator[list[Answer], None, None]:
        """One list of answers per model run, in the order of `paths`.

        At most one batch waits beyond the ones running, so the work done ahead stays
        bounded; closing the generator early (a failed job) waits for the runs under way,
        so no thread outlives it.
        """
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="batch")
        pending: deque[Future[list[Answer]]] = deque()
        start = 0
        try:
            while start < len(paths) or pending:
                while start < len(paths) and len(pending) <= self.threads:
                    chunk = paths[start : start + self.batch]
                    start += len(chunk)
                    pending.append(pool.submit(self._answer, chunk, top_k))
                answers = pending.popleft().result()
                self._log_fallback()
                yield answers
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _answer(self, paths: Sequence[Path], top_k: int) -> list[Answer]:
        """On a pool thread: decode `paths`, run the readable ones, answer each in order."""
        items = [prepare(path, self.manifest) for path in paths]
        readable = [item for item in items if item.input is not None]
        results = iter(self._run(readable, top_k) if readable else [])
        return [
            Answer(item.path, None if item.input is None else next(results), item.error) for item in items
        ]

    def _run(self, items: list[Item], top_k: int) -> list[InferResult]:
        if len(items) > 1:
            try:
                return self._session_run(items, top_k)
            except Refusal:
                raise
            except Exception as exc:  # ONNX Runtime raises its own types; a model may refuse batches
                with self._lock:
                    if self.batch > 1:
                        self.batch = 1
                        self._fell_back = (
                            f"the model failed on a batch of {len(items)} ({_first_line(exc)}); "
                            "going on one image at a time"
                        )
        return [result for item in items for result in self._session_run([item], top_k)]

    def _session_run(self, items: list[Item], top_k: int) -> list[InferResult]:
        batch = stack([item.input for item in items if item.input is not None])
        return run_prepared(self.session, self.manifest, batch, [item.scale for item in items], top_k)

    def _log_fallback(self) -> None:
        """The job's own thread writes the log line: the reporter is not shared between threads."""
        with self._lock:
            said, self._fell_back = self._fell_back, None
        if said is not None:
            self.report.log(said)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
