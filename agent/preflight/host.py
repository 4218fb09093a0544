"""Checks of the kit itself: room on disk, heat, battery, the agent's version."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.facts import power, thermal
from agent.wire import PreflightCheck

__all__ = ["check_battery", "check_disk", "check_thermal", "check_version"]

_GIB = 1 << 30
WARN_FREE_FRACTION = 0.05  # less than this share of the disk left after the plan: warn
THERMAL_WARN_MARGIN_C = 10.0  # within this of the chip's "high" reading: warn
THERMAL_WARN_C, THERMAL_FAIL_C = 80.0, 95.0  # when the chip names no limits
BATTERY_WARN_PCT, BATTERY_FAIL_PCT = 50.0, 20.0  # off mains power


def check_disk(models_dir: Path, planned: int, reserve: int) -> PreflightCheck:
    """Room where models live for what the mission plans, beyond the reserve uploads never use."""
    where = models_dir if models_dir.exists() else models_dir.parent
    usage = shutil.disk_usage(where)
    left = usage.free - reserve - planned
    said = f"{_gib(usage.free)} free where models live ({where})" + (
        f", {_gib(planned)} planned" if planned else ""
    )
    if left < 0:
        return PreflightCheck(
            id="disk",
            status="fail",
            message=f"{said}: {_gib(-left)} short (the agent keeps {_gib(reserve)} in reserve)",
            action="free space: `kitfleet models delete KIT NAME VERSION` for old versions, "
            "`kitfleet jobs delete KIT JOB` for finished jobs",
        )
    if left < usage.total * WARN_FREE_FRACTION:
        return PreflightCheck(
            id="disk",
            status="warn",
            message=f"{said}: less than {WARN_FREE_FRACTION:.0%} of the disk would be left",
            action="free space: `kitfleet models delete KIT NAME VERSION` for old versions",
        )
    return PreflightCheck(id="disk", status="pass", message=said)


def check_thermal() -> PreflightCheck:
    facts = thermal.collect()
    if not facts.available or facts.max_c is None:
        return PreflightCheck(
            id="thermal", status="pass", message="temperature not measurable here (no sensor)"
        )
    hottest = max(
        (s for s in facts.sensors or [] if s.current_c is not None),
        key=lambda s: s.current_c or 0.0,
        default=None,
    )
    high = hottest.high_c if hottest and hottest.high_c else THERMAL_WARN_C + THERMAL_WARN_MARGIN_C
    critical = hottest.critical_c if hottest and hottest.critical_c else THERMAL_FAIL_C
    said = f"hottest sensor {facts.max_c:.0f} °C (high {high:.0f}, critical {critical:.0f})"
    action = "let the kit cool: shade, airflow, fewer jobs (`kitfleet jobs list KIT`)"
    if facts.max_c >= critical:
        return PreflightCheck(id="thermal", status="fail", message=said, action=action)
    if facts.max_c >= high - THERMAL_WARN_MARGIN_C:
        return PreflightCheck(id="thermal", status="warn", message=said, action=action)
    return PreflightCheck(id="thermal", status="pass", message=said)


def check_battery() -> PreflightCheck:
    facts = power.collect()
    battery = facts.battery
    if battery is None or not battery.available or battery.percent is None:
        return PreflightCheck(id="battery", status="pass", message="no battery measurable (mains or unknown)")
    said = f"battery {battery.percent:.0f} %" + (", on mains" if battery.plugged else ", on battery")
    if battery.plugged:
        return PreflightCheck(id="battery", status="pass", message=said)
    action = "connect the kit to power and let it charge"
    if battery.percent < BATTERY_FAIL_PCT:
        return PreflightCheck(id="battery", status="fail", message=said, action=action)
    if battery.percent < BATTERY_WARN_PCT:
        return PreflightCheck(id="battery", status="warn", message=said, action=action)
    return PreflightCheck(id="battery", status="pass", message=said)


def check_version(version: str) -> PreflightCheck:
    return PreflightCheck(id="agent", status="pass", message=f"kitfleet-agent {version}")


def _gib(size: int) -> str:
    return f"{size / _GIB:.2f} GiB"
