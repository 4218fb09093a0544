"""Battery discharge through /sys/class/power_supply: what the batteries lost meanwhile.

energy_now (µWh) where the battery reports it, else charge_now (µAh) × voltage_now (µV).
A battery that is charging (or starts to, mid-measurement) says nothing about what the
work cost: the reading is refused, saying so, and the caller falls back to the estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from agent.energy.reading import EnergyReading, NotMeasured, Source

__all__ = ["BatteryMeter"]

CHARGING = ("Charging", "Full")  # on mains power either way


@dataclass
class _Token:
    started: float
    joules: float  # stored energy at start, all batteries


class BatteryMeter:
    source: Source = "battery"

    def __init__(self, sysfs: Path = Path("/sys")) -> None:
        root = sysfs / "class" / "power_supply"
        self.batteries = [p for p in sorted(root.glob("*")) if _text(p / "type") == "Battery"]
        if not self.batteries:
            raise NotMeasured("this kit has no battery")
        self._stored()  # refuse now when it charges or reports nothing usable

    def _stored(self) -> float:
        total = 0.0
        for battery in self.batteries:
            status = _text(battery / "status")
            if status in CHARGING:
                raise NotMeasured(f"battery {battery.name} was {status.lower()} (on mains power)")
            total += _joules(battery)
        return total

    def start(self) -> _Token:
        return _Token(time.monotonic(), self._stored())

    def sample(self, token: object) -> None:
        self._stored()  # a battery that charged for a moment spoils the difference

    def stop(self, token: object) -> EnergyReading:
        assert isinstance(token, _Token)
        try:
            used = token.joules - self._stored()
        except NotMeasured as exc:
            raise NotMeasured(f"{exc} during the job, so its discharge is excluded") from None
        note = "measured as battery discharge; the whole kit, not this job alone (the gauge is coarse)"
        return EnergyReading.of(used, time.monotonic() - token.started, "battery", note)


def _joules(battery: Path) -> float:
    energy = _number(battery / "energy_now")
    if energy is not None:
        return energy * 3600 / 1e6  # µWh
    charge, volts = _number(battery / "charge_now"), _number(battery / "voltage_now")
    if charge is None or volts is None:
        raise NotMeasured(f"battery {battery.name} reports neither energy_now nor charge_now and voltage_now")
    return charge * volts * 3600 / 1e12  # µAh × µV


def _number(path: Path) -> float | None:
    text = _text(path)
    try:
        return float(text)
    except ValueError:
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
