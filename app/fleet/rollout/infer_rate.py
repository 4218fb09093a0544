"""The soak's infer error rate: how many of a kit's infer requests on the new version failed
since its activation, from the agent's own per-version counts (`Metrics.infer_counts`).

The counts are read once when the version is activated (kept in the kit's `checks` as
`INFER_AT_ACTIVATION`) and again at the end of the soak; the difference is the window. An
agent that restarted in between (a later `infer_counts_since`) counted everything it has
since activation, so its counts are the window as they are.

Only `failed` (the kit's fault: ONNX Runtime raising on the input, outputs contradicting the
manifest) counts against `--max-error-rate`, over the requests answered or failed. `refused`
(the request's fault: a corrupt image, a tensor of the wrong shape) says nothing about the
version, and a client sending bad pictures must not roll a good version back; it is reported.
"""

from __future__ import annotations

from typing import Any

from agent.wire import MAX_INT64, Metrics
from app.fleet.rollout.record import KitState
from app.fleet.service import Fleet

__all__ = ["INFER_AT_ACTIVATION", "InferWindow", "async_infer_counts", "window"]

INFER_AT_ACTIVATION = "infer at activation"
_FIELDS = ("answered", "refused", "failed")


async def async_infer_counts(fleet: Fleet, kit: KitState, model: str) -> dict[str, float]:
    """The kit's counts for `model` at `kit.version` now, with the time they started."""
    target = fleet.inventory.get(kit.device_id)
    metrics: Metrics = await fleet.async_call(target, lambda c: c.metrics(since_seq=MAX_INT64, limit=1))
    row = next((c for c in metrics.infer_counts if c.model == model and c.version == kit.version), None)
    counts: dict[str, float] = {name: float(getattr(row, name)) if row else 0.0 for name in _FIELDS}
    return {"since": metrics.infer_counts_since, **counts}


class InferWindow:
    """The counts since activation."""

    def __init__(self, answered: int, refused: int, failed: int) -> None:
        self.answered, self.refused, self.failed = answered, refused, failed

    @property
    def rate(self) -> float:
        run = self.answered + self.failed
        return self.failed / run if run else 0.0

    def said(self) -> str:
        text = f"{self.failed} of {self.answered + self.failed} infer requests failed"
        return text + (f" ({self.refused} refused as the client's fault)" if self.refused else "")


def window(at_activation: Any, now: dict[str, float]) -> InferWindow:
    """`now` less the counts at activation, unless the agent restarted since (or they are
    missing: an activation recorded before counts existed counts everything)."""
    base = at_activation if isinstance(at_activation, dict) else {}
    same_run = base.get("since") == now["since"]
    values = [int(now[f] - (float(base.get(f, 0.0)) if same_run else 0.0)) for f in _FIELDS]
    return InferWindow(*(max(v, 0) for v in values))
