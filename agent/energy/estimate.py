"""An estimate where nothing measures: this process's CPU time × the kit's TDP per core.

A job that keeps every core busy for a second is taken to draw the TDP for that second;
one core for a second, TDP / cores. Idle power, the GPU and memory are not counted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from agent.energy.reading import EnergyReading, Source

__all__ = ["DEFAULT_TDP_W", "EstimateMeter"]

DEFAULT_TDP_W = 15.0  # a fanless edge box or a laptop-class CPU; set tdp_w per kit


def _cpu_seconds() -> float:
    """This process and the children it has waited for (a command job's program)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class _Token:
    started: float
    cpu: float


class EstimateMeter:
    source: Source = "estimate"

    def __init__(self, tdp_w: float = DEFAULT_TDP_W, cores: int | None = None) -> None:
        self.tdp_w = tdp_w
        self.cores = cores or os.cpu_count() or 1

    def start(self) -> _Token:
        return _Token(time.monotonic(), _cpu_seconds())

    def sample(self, token: object) -> None:
        """CPU time only grows: nothing to accumulate."""

    def stop(self, token: object) -> EnergyReading:
        assert isinstance(token, _Token)
        cpu = _cpu_seconds() - token.cpu
        note = f"estimated from CPU time × {self.tdp_w:g} W TDP"
        seconds = time.monotonic() - token.started
        return EnergyReading.of(cpu * self.tdp_w / self.cores, seconds, "estimate", note)
