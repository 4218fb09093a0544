"""The path batch-infer and evaluate share: images prepared on decode threads, run
through the model a batch at a time, answered in folder order.

Answers are those of one-at-a-time inference: the same preprocessing as /infer, one
row per image in order, and an unreadable image is an error row, not a failed job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import Refusal
from agent.jobs.kinds._budget import Budget
from agent.jobs.kinds._images import Item, prepared
from agent.jobs.kinds._model import fixed_batch, load
from agent.jobs.report import Reporter
from agent.models.infer import MAX_BATCH, run_prepared
from agent.toolkit.images import stack
from agent.wire import InferResult, Manifest

BATCH_BYTES = 8 << 20  # model input per run: large inputs get smaller batches, so memory stays bounded


@dataclass
class Answer:
    path: Path
    result: InferResult | None  # None when the image could not be read
    error: str | None = None


def split_threads(threads: int) -> tuple[int, int]:
    """(decode threads besides the job's own, ONNX Runtime intra-op threads) for a job that
    holds `threads`.

    Both stages may use all of them, taking turns through one `Budget`: the job's own thread
    runs the model and decodes while it waits, the other threads decode, and a model run
    waits for the decodes under way. So whichever stage is the slower one (decoding camera
    pictures for a small model, the model for a large one) gets every thread the job holds,
    and never more run at once.
    """
    return max(threads, 1) - 1, max(threads, 1)


def batch_size(manifest: Manifest) -> int:
    """Images per run for a model with a free batch dimension: MAX_BATCH, fewer when that
    many inputs would pass BATCH_BYTES (a 640×640 detector takes a few at a time)."""
    spec = manifest.input
    one = spec.height * spec.width * spec.channels * np.dtype(spec.dtype).itemsize
    return max(1, min(MAX_BATCH, BATCH_BYTES // one))


class Pipeline:
    def __init__(self, spec: dict[str, Any], report: Reporter) -> None:
        self.report = report
        self.decoders, intra_op = split_threads(spec["threads"])
        self.budget = Budget(intra_op)
        self.manifest, self.session = load(spec, report, intra_op, spinning=False)
        self.batch = 1 if fixed_batch(self.session, self.manifest) is not None else batch_size(self.manifest)

    def answers(self, paths: Sequence[Path], top_k: int) -> Generator[list[Answer], None, None]:
        """One list of answers per model run, in the order of `paths`."""
        ahead = self.batch + self.decoders  # the next batch, while this one runs
        with contextlib.closing(prepared(paths, self.manifest, self.decoders, ahead, self.budget)) as items:
            for chunk in self._chunks(items):
                yield self._answer(chunk, top_k)

    def _chunks(self, items: Iterator[Item]) -> Iterator[list[Item]]:
        """Runs of items holding a whole batch of readable images (unreadable ones ride along),
        so broken files do not shrink the model's batches; capped so progress keeps coming."""
        chunk: list[Item] = []
        readable = 0
        for item in items:
            chunk.append(item)
            readable += item.input is not None
            if readable == self.batch or len(chunk) == self.batch + MAX_BATCH:
                yield chunk
                chunk, readable = [], 0
        if chunk:
            yield chunk

    def _answer(self, items: list[Item], top_k: int) -> list[Answer]:
        results = iter(self._run([item for item in items if item.input is not None], top_k))
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
                self.batch = 1
                self.report.log(
                    f"the model failed on a batch of {len(items)} ({_first_line(exc)}); "
                    "going on one image at a time"
                )
        return [result for item in items for result in self._session_run([item], top_k)]

    def _session_run(self, items: list[Item], top_k: int) -> list[InferResult]:
        batch = stack([item.input for item in items if item.input is not None])
        with self.budget.whole():
            return run_prepared(self.session, self.manifest, batch, [item.scale for item in items], top_k)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
