"""NVIDIA GPUs' energy counters through NVML, when pynvml (nvidia-ml-py) is installed.

It is an optional dependency: without it, or without a driver, the meter is not offered.
nvmlDeviceGetTotalEnergyConsumption counts millijoules since the driver loaded (Volta on).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

from agent.energy.reading import EnergyReading, NotMeasured, Source

__all__ = ["NvmlMeter"]


@dataclass
class _Token:
    started: float
    millijoules: int


class NvmlMeter:
    source: Source = "nvml"

    def __init__(self) -> None:
        try:
            self._nvml: Any = importlib.import_module("pynvml")
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._devices = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._read()
        except Exception as exc:  # ImportError, NVMLError_*: NVML is a bonus, never a fault
            raise NotMeasured(f"no NVIDIA energy counters ({exc})") from None
        if not self._devices:
            raise NotMeasured("NVML found no NVIDIA GPU")

    def _read(self) -> int:
        return sum(int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(d)) for d in self._devices)

    def start(self) -> _Token:
        return _Token(time.monotonic(), self._read())

    def sample(self, token: object) -> None:
        """The counter is 64-bit: nothing to accumulate."""

    def stop(self, token: object) -> EnergyReading:
        assert isinstance(token, _Token)
        try:
            used = (self._read() - token.millijoules) / 1000
        except Exception as exc:  # the driver went away mid-job
            raise NotMeasured(f"NVML stopped answering ({exc})") from None
        note = f"measured by NVML on {len(self._devices)} NVIDIA GPU(s), the GPUs only"
        return EnergyReading.of(used, time.monotonic() - token.started, "nvml", note)
