"""Thermal facts: every temperature sensor, and the hottest reading for the metrics sampler."""

from __future__ import annotations

import psutil

from agent.wire import TemperatureSensor, ThermalFacts

from ._common import unavailable


def collect() -> ThermalFacts:
    """Return each sensor reading in Celsius and the hottest current value."""
    readings = _readings()
    if not readings:
        return unavailable(ThermalFacts, "no temperature sensors reported")
    return ThermalFacts(available=True, sensors=readings, max_c=_hottest(readings))


def max_temperature_c() -> float | None:
    """The hottest current sensor reading in Celsius, or None when the kit reports none."""
    return _hottest(_readings())


def _readings() -> list[TemperatureSensor]:
    """psutil's sensors flattened to one entry per reading."""
    sensor = getattr(psutil, "sensors_temperatures", None)  # absent on some platforms
    groups = sensor() if sensor is not None else {}
    return [
        TemperatureSensor(
            sensor=name,
            label=entry.label or None,
            current_c=entry.current,
            high_c=entry.high,
            critical_c=entry.critical,
        )
        for name, entries in sorted(groups.items())
        for entry in entries
    ]


def _hottest(readings: list[TemperatureSensor]) -> float | None:
    currents = [reading.current_c for reading in readings if reading.current_c is not None]
    return max(currents, default=None)
