"""What every energy meter answers, and the one interface they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["EnergyMeter", "EnergyReading", "NotMeasured", "Source"]

Source = Literal["rapl", "nvml", "battery", "estimate"]


@dataclass(frozen=True)
class EnergyReading:
    """Energy used between a meter's start() and stop(); `note` says what it covers."""

    joules: float
    seconds: float
    avg_watts: float
    source: Source
    note: str = ""

    @classmethod
    def of(cls, joules: float, seconds: float, source: Source, note: str = "") -> EnergyReading:
        watts = joules / seconds if seconds > 0 else 0.0
        return cls(max(joules, 0.0), seconds, watts, source, note)


class NotMeasured(Exception):
    """A meter could not measure this time (no access, battery began charging, ...); the
    message says why and, where there is one, how to fix it."""


class EnergyMeter(Protocol):
    source: Source

    def start(self) -> object:
        """A token holding the counters now; pass it to sample() and stop()."""

    def sample(self, token: object) -> None:
        """Read the counters again, so a counter that wraps more than once is still counted."""

    def stop(self, token: object) -> EnergyReading:
        """Energy since start(token); raises NotMeasured when this meter cannot say."""
