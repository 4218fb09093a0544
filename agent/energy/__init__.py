"""Energy a job used: measured (RAPL, NVML, battery discharge) where the kit can, else an
estimate from CPU time × the kit's TDP, always labelled with its source. No Qt, no app."""

from agent.energy.choose import FallbackMeter, measuring_meter
from agent.energy.estimate import DEFAULT_TDP_W, EstimateMeter
from agent.energy.rapl import GRANT_HINT, RaplMeter
from agent.energy.reading import EnergyMeter, EnergyReading, NotMeasured, Source

__all__ = [
    "DEFAULT_TDP_W",
    "GRANT_HINT",
    "EnergyMeter",
    "EnergyReading",
    "EstimateMeter",
    "FallbackMeter",
    "NotMeasured",
    "RaplMeter",
    "Source",
    "measuring_meter",
]
