"""The best meter this kit has, with the estimate behind it when the meter cannot say."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.energy.battery import BatteryMeter
from agent.energy.estimate import DEFAULT_TDP_W, EstimateMeter
from agent.energy.nvml import NvmlMeter
from agent.energy.rapl import RaplMeter
from agent.energy.reading import EnergyMeter, EnergyReading, NotMeasured, Source

__all__ = ["FallbackMeter", "measuring_meter"]


def measuring_meter(sysfs: Path = Path("/sys")) -> tuple[EnergyMeter | None, str]:
    """RAPL, else NVML, else battery discharge; None and why each was not usable."""
    reasons = []
    for make in (lambda: RaplMeter(sysfs), NvmlMeter, lambda: BatteryMeter(sysfs)):
        try:
            return make(), ""
        except NotMeasured as exc:
            reasons.append(str(exc))
    return None, "; ".join(reasons)


@dataclass
class _Pair:
    measured: object | None
    estimated: object


class FallbackMeter:
    """A measuring meter where the kit has one, the CPU-time estimate always beside it: stop()
    never fails, and a reading the meter refused says why in the estimate's note."""

    def __init__(self, sysfs: Path = Path("/sys"), tdp_w: float = DEFAULT_TDP_W) -> None:
        self.measuring, self._why_not = measuring_meter(sysfs)
        self.estimate = EstimateMeter(tdp_w)

    @property
    def source(self) -> Source:
        return self.measuring.source if self.measuring is not None else "estimate"

    def start(self) -> _Pair:
        return _Pair(None if self.measuring is None else self.measuring.start(), self.estimate.start())

    def sample(self, token: object) -> None:
        assert isinstance(token, _Pair)
        measured = token.measured
        if self.measuring is not None and measured is not None:
            try:
                self.measuring.sample(measured)
            except NotMeasured as exc:  # e.g. the battery began charging: the estimate it is
                self._why_not = f"{exc} during the job, so it is excluded"
                self.measuring = None

    def stop(self, token: object) -> EnergyReading:
        assert isinstance(token, _Pair)
        measured, estimated = token.measured, token.estimated
        if self.measuring is not None and measured is not None:
            try:
                return self.measuring.stop(measured)
            except NotMeasured as exc:  # not to be trusted again in this measurement
                self._why_not = str(exc)
                self.measuring = None
        reading = self.estimate.stop(estimated)
        if not self._why_not:
            return reading
        note = f"{reading.note} (not measured: {self._why_not})"
        return EnergyReading(reading.joules, reading.seconds, reading.avg_watts, "estimate", note)
