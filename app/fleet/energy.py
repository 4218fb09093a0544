"""A job's energy for a person: the CLI, the window's Jobs tab and the field report say the
same thing, in the same words."""

from __future__ import annotations

from typing import Any

from agent.wire import JobEnergy

__all__ = ["energy_lines", "energy_summary"]


def energy_summary(result: dict[str, Any] | None) -> str | None:
    """'energy 12.3 J, 4.1 W avg, 2.4 J per 1,000 inferences (estimated from CPU time × 15 W TDP)'."""
    energy = JobEnergy.of_result(result)
    return None if energy is None else f"energy {energy.line()}"


def energy_lines(result: dict[str, Any] | None) -> list[str]:
    """The summary, then what it covers and how to measure instead of estimating, then a
    stream's watts over time."""
    energy = JobEnergy.of_result(result)
    if energy is None:
        return []
    lines = [f"energy {energy.line()}"]
    if energy.detail():
        lines.append(f"  {energy.detail()}")
    if energy.watts_over_time:
        points = ", ".join(f"{s.watts:.1f} W at {s.at_s:.0f} s" for s in energy.watts_over_time)
        lines.append(f"  watts over time: {points}")
    return lines
