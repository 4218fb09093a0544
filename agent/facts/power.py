"""Power facts: the battery (charge, plugged in, time left) and the kit's power supplies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from ._common import Family, read_text, unavailable

POWER_SUPPLY = Path("/sys/class/power_supply")


def collect() -> Family:
    """Return battery state and power supplies; unavailable when neither is reported."""
    battery = _battery()
    supplies = _supplies()
    if not battery["available"] and not supplies:
        return battery
    return {
        "available": True,
        "on_ac": _on_ac(battery, supplies),
        "battery": battery,
        "supplies": supplies,
    }


def _battery() -> dict[str, Any]:
    sensor = getattr(psutil, "sensors_battery", None)  # absent on some platforms
    reading = sensor() if sensor is not None else None
    if reading is None:
        return unavailable("no battery reported")
    secs = reading.secsleft
    return {
        "available": True,
        "percent": float(reading.percent),
        "plugged": reading.power_plugged,
        # psutil uses negative sentinels for "unknown" and "unlimited" (on AC).
        "secs_left": int(secs) if secs is not None and secs >= 0 else None,
    }


def _supplies() -> list[dict[str, Any]]:
    """Entries of /sys/class/power_supply: mains adapters, USB-C inputs, batteries, UPSes."""
    supplies: list[dict[str, Any]] = []
    for path in sorted(POWER_SUPPLY.glob("*")):
        online = read_text(path / "online")
        supplies.append(
            {
                "name": path.name,
                "type": read_text(path / "type"),
                "online": online == "1" if online is not None else None,
                "status": read_text(path / "status"),
            }
        )
    return supplies


def _on_ac(battery: dict[str, Any], supplies: list[dict[str, Any]]) -> bool | None:
    """Whether external power is connected, or None when nothing says so."""
    mains = [s["online"] for s in supplies if s["type"] != "Battery" and s["online"] is not None]
    if mains:
        return any(mains)
    return battery.get("plugged")
