"""Print an agent's per-request time breakdown for one model, from its /v1/metrics."""

from __future__ import annotations

from agent.wire import INFER_STAGES, MAX_INT64
from app.fleet.inventory import Kit
from app.fleet.service import Fleet


async def print_breakdown(fleet: Fleet, kit: Kit, model: str) -> None:
    """Mean milliseconds per request and stage, as the agent counted them (every request this
    run sent the model, tensors and images together)."""
    metrics = await fleet.async_call(kit, lambda c: c.metrics(since_seq=MAX_INT64, limit=1))
    rows = [row for row in metrics.infer if row.model == model]
    if not rows:
        print(f"  the agent reports no timed requests for {model}")
        return
    [row] = rows
    per_request = row.requests or 1
    print(f"  the agent's own breakdown of {model} ({row.requests} requests), mean ms per request:")
    stages = "  ".join(f"{s} {getattr(row, f'{s}_s') * 1000 / per_request:.3f}" for s in INFER_STAGES)
    print(f"    total {row.total_s * 1000 / per_request:.3f} = {stages}")
