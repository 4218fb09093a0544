"""Per model version counts of infer requests by outcome, for /metrics and a rollout's soak.

Cheap on purpose, since it runs on every request: one dict lookup and one integer increment,
on the event loop only (every outcome is known there: `InferService.answer` awaits the worker
or the batch), so no lock. Read from any thread: a row is copied whole before it is shown.

Outcomes: `answered`; `refused`, the request's own fault (a Refusal: a bad image, a tensor the
model cannot take, a version not installed, the kit busy); `failed`, the kit's fault (ONNX
Runtime raising on the input, outputs that contradict the manifest, any other exception).
"""

from __future__ import annotations

import time

from agent.toolkit.errors import Refusal
from agent.wire.timings import InferCounts

__all__ = ["ANSWERED", "FAILED", "KIT_FAULTS", "REFUSED", "InferCounter", "outcome_of"]

ANSWERED, REFUSED, FAILED = 0, 1, 2
# Refusals that are the model's fault, not the request's: outputs contradicting the manifest.
KIT_FAULTS = frozenset({"output_mismatch"})


def outcome_of(exc: BaseException) -> int:
    """REFUSED for a refusal of the request, FAILED for anything the kit got wrong."""
    if isinstance(exc, Refusal) and exc.error not in KIT_FAULTS:
        return REFUSED
    return FAILED


class InferCounter:
    def __init__(self) -> None:
        self.since = time.time()
        self._rows: dict[tuple[str, str], list[int]] = {}  # [answered, refused, failed]

    def add(self, name: str, version: str, outcome: int) -> None:
        row = self._rows.get((name, version))
        if row is None:
            row = self._rows[(name, version)] = [0, 0, 0]
        row[outcome] += 1

    def snapshot(self) -> list[InferCounts]:
        rows = [(key, list(row)) for key, row in list(self._rows.items())]
        return [
            InferCounts(
                model=name, version=version, requests=sum(row), answered=row[0], refused=row[1], failed=row[2]
            )
            for (name, version), row in sorted(rows)
        ]
