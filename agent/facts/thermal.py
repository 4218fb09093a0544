"""Thermal facts: every temperature sensor, and the hottest reading for the metrics sampler."""

from __future__ import annotations

from typing import Any

import psutil

from ._common import Family, unavailable


def collect() -> Family:
    """Return each sensor reading in Celsius and the hottest current value."""
    readings = _readings()
    if not readings:
        return unavailable("no temperature sensors reported")
    return {"available": True, "sensors": readings, "max_c": _hottest(readings)}


def max_temperature_c() -> float | None:
    """The hottest current sensor reading in Celsius, or None when the kit reports none."""
    return _hottest(_readings())


def _readings() -> list[dict[str, Any]]:
    """psutil's sensors flattened to one entry per reading."""
    sensor = getattr(psutil, "sensors_temperatures", None)  # absent on some platforms
    groups = sensor() if sensor is not None else {}
    return [
        {
            "sensor": name,
            "label": entry.label or None,
            "current_c": entry.current,
            "high_c": entry.high,
            "critical_c": entry.critical,
        }
        for name, entries in sorted(groups.items())
        for entry in entries
    ]


def _hottest(readings: list[dict[str, Any]]) -> float | None:
    currents = [reading["current_c"] for reading in readings if reading["current_c"] is not None]
    return max(currents, default=None)
