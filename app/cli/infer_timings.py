"""`kitfleet models list KIT --timings`: where a kit's infer requests spent their time."""

from __future__ import annotations

from agent.wire import INFER_STAGES, InferTimings

__all__ = ["timing_lines"]


def timing_lines(timings: list[InferTimings]) -> list[str]:
    """A table of mean milliseconds per request and stage, one row per model the kit answered."""
    if not timings:
        return ["", "no infer requests answered since the kit's agent started"]
    columns = ("total", *INFER_STAGES)
    lines = [
        "",
        "where infer requests spent their time, mean ms per request since the agent started:",
        f"  {'model':<20} {'requests':>8} " + " ".join(f"{c:>8}" for c in columns),
    ]
    for row in timings:
        means = [getattr(row, f"{c}_s") * 1000 / max(row.requests, 1) for c in columns]
        lines.append(f"  {row.model:<20} {row.requests:>8} " + " ".join(f"{m:8.3f}" for m in means))
    return lines
