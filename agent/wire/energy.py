"""What a job's work cost in energy, as a job result carries it (`energy`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from agent.wire.base import WireModel

__all__ = ["EnergySource", "JobEnergy", "PowerSample"]


class PowerSample(WireModel):
    at_s: float = Field(description="seconds since the job started, at the end of the interval")
    watts: float = Field(description="average over the interval")


EnergySource = Literal["rapl", "nvml", "battery", "estimate"]


class JobEnergy(WireModel):
    """What a finished job's work cost in energy, and how that is known: measured (rapl, nvml,
    battery) or estimated from CPU time. A job result carries it as `energy`."""

    joules: float | None = None
    avg_watts: float | None = None
    seconds: float | None = None
    source: EnergySource | None = None
    note: str | None = Field(default=None, description="what the figure covers; why it is not measured")
    inferences: int | None = Field(default=None, description="model runs × batch, when the job counts them")
    joules_per_1000_inferences: float | None = None
    joules_per_image: float | None = None
    watts_over_time: list[PowerSample] | None = Field(default=None, description="stream jobs: a few samples")

    @classmethod
    def of_result(cls, result: dict[str, Any] | None) -> JobEnergy | None:
        """The energy a job result carries; None from an older kit or a job without it."""
        raw = (result or {}).get("energy")
        try:
            return cls.model_validate(raw) if isinstance(raw, dict) else None
        except ValidationError:
            return None

    def line(self) -> str:
        """'12.3 J, 4.1 W avg, 2.4 J per 1,000 inferences (estimated from CPU time × 15 W TDP)'."""
        parts = [f"{_figure(self.joules)} J", f"{_figure(self.avg_watts)} W avg"]
        if self.joules_per_1000_inferences is not None:
            parts.append(f"{_figure(self.joules_per_1000_inferences)} J per 1,000 inferences")
        if self.joules_per_image is not None:
            parts.append(f"{_figure(self.joules_per_image)} J per image")
        return f"{', '.join(parts)} ({self.basis()})"

    def basis(self) -> str:
        """How the figure was got, in a few words (the note's first clause)."""
        note = self.note or self.source or "source unknown"
        return note.split(" (not measured:")[0].split(";")[0]

    def detail(self) -> str:
        """The rest of the note: what it covers, why it was not measured and how to fix that."""
        note = self.note or ""
        return note[len(self.basis()) :].strip(" ;()")


def _figure(value: float | None) -> str:
    if value is None:
        return "?"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"
