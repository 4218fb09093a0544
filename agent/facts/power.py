"""Power facts: the battery (charge, plugged in, time left) and the kit's power supplies."""

from __future__ import annotations

from pathlib import Path

import psutil

from agent.wire import Battery, PowerFacts, PowerSupply

from ._common import read_text, unavailable

POWER_SUPPLY = Path("/sys/class/power_supply")


def collect() -> PowerFacts:
    """Return battery state and power supplies; unavailable when neither is reported."""
    battery = _battery()
    supplies = _supplies()
    if not battery.available and not supplies:
        return unavailable(PowerFacts, battery.reason or "no battery or power supply reported")
    return PowerFacts(available=True, on_ac=_on_ac(battery, supplies), battery=battery, supplies=supplies)


def _battery() -> Battery:
    sensor = getattr(psutil, "sensors_battery", None)  # absent on some platforms
    reading = sensor() if sensor is not None else None
    if reading is None:
        return Battery(available=False, reason="no battery reported")
    secs = reading.secsleft
    return Battery(
        available=True,
        percent=float(reading.percent),
        plugged=reading.power_plugged,
        # psutil uses negative sentinels for "unknown" and "unlimited" (on AC).
        secs_left=int(secs) if secs is not None and secs >= 0 else None,
    )


def _supplies() -> list[PowerSupply]:
    """Entries of /sys/class/power_supply: mains adapters, USB-C inputs, batteries, UPSes."""
    supplies: list[PowerSupply] = []
    for path in sorted(POWER_SUPPLY.glob("*")):
        online = read_text(path / "online")
        supplies.append(
            PowerSupply(
                name=path.name,
                type=read_text(path / "type"),
                online=online == "1" if online is not None else None,
                status=read_text(path / "status"),
            )
        )
    return supplies


def _on_ac(battery: Battery, supplies: list[PowerSupply]) -> bool | None:
    """Whether external power is connected, or None when nothing says so."""
    mains = [s.online for s in supplies if s.type != "Battery" and s.online is not None]
    if mains:
        return any(mains)
    return battery.plugged
