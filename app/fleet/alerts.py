"""Alerts: what on a kit needs the technician now, judged from its latest figures and history.

Thresholds have defaults and can be set in `settings.json` under "alerts" in the app's home,
e.g. `{"alerts": {"temperature_warn_c": 75}}`. A kit that is away is judged on its last-known
figures (and the alert says so), plus how long it has been away.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from agent.wire import MetricSample
from app.fleet.errors import Error
from app.fleet.settings import SETTINGS_FILE

__all__ = ["Alert", "Severity", "Thresholds", "evaluate"]

Severity = Literal["warning", "critical"]
GIB = 1 << 30


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass(frozen=True)
class Thresholds:
    temperature_warn_c: float = field(default=80.0, metadata=_doc("hottest sensor, sustained"))
    temperature_critical_c: float = field(default=90.0, metadata=_doc("hottest sensor, now"))
    sustained_s: float = field(default=300.0, metadata=_doc("window a warning must hold over"))
    disk_free_warn_gib: float = field(default=2.0, metadata=_doc("free space where models live"))
    disk_free_critical_gib: float = field(default=0.5, metadata=_doc("below this deploys fail"))
    disk_full_within_h: float = field(default=12.0, metadata=_doc("warn if the disk fills this soon"))
    battery_warn_percent: float = field(default=25.0, metadata=_doc("battery charge"))
    battery_critical_percent: float = field(default=10.0, metadata=_doc("battery charge"))
    job_failures_window_h: float = field(default=24.0, metadata=_doc("failed jobs counted over"))
    job_failures_warn: int = field(default=1, metadata=_doc("failed jobs that make a warning"))
    offline_warn_min: float = field(default=30.0, metadata=_doc("away this long: a warning"))
    offline_critical_h: float = field(default=8.0, metadata=_doc("away this long: critical"))

    @classmethod
    def load(cls, home: Path) -> Thresholds:
        """Defaults, overridden by `alerts` in settings.json; a bad value is refused clearly."""
        path = home / SETTINGS_FILE
        try:
            stored = json.loads(path.read_text()).get("alerts", {}) if path.exists() else {}
        except (OSError, ValueError, AttributeError) as exc:
            raise Error(f"cannot read alert thresholds from {path}: {exc}; fix or remove it") from exc
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in (stored or {}).items():
            if key not in known:
                raise Error(f"{path}: alerts.{key} is not a threshold; known: {', '.join(known)}")
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
                raise Error(f"{path}: alerts.{key} must be a non-negative number, not {raw!r}")
            values[key] = int(raw) if known[key] == "int" else float(raw)
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    device_id: str
    kit: str
    severity: Severity
    kind: str  # temperature | disk | battery | jobs | offline | identity | audit
    message: str

    @property
    def rank(self) -> int:
        return 0 if self.severity == "critical" else 1


@dataclass(frozen=True)
class KitFigures:
    """What alerts are judged on: one kit's latest state and recent history, live or not."""

    device_id: str
    kit: str
    status: str  # online | offline | identity_changed | checking
    last_seen_at: float | None
    latest: MetricSample | None = None
    coolest_c: float | None = None  # the lowest temperature over the sustained window
    disk_earlier: tuple[float, int] | None = None  # (ts, free bytes) about an hour before latest
    failed_jobs: list[str] = field(default_factory=list)  # labels/ids of recent failures
    audit_problems: list[str] = field(default_factory=list)


def evaluate(figures: KitFigures, limits: Thresholds, now: float | None = None) -> list[Alert]:
    """Every alert for one kit, critical first."""
    now = time.time() if now is None else now
    found: list[tuple[Severity, str, str]] = []
    found += _presence(figures, limits, now)
    if figures.latest is not None:
        found += _temperature(figures, limits) + _disk(figures, limits) + _battery(figures, limits)
    if len(figures.failed_jobs) >= max(1, limits.job_failures_warn):
        names = ", ".join(figures.failed_jobs[:3]) + ("…" if len(figures.failed_jobs) > 3 else "")
        found.append(
            (
                "warning",
                "jobs",
                f"{len(figures.failed_jobs)} job(s) failed in the last "
                f"{limits.job_failures_window_h:g} h: {names}",
            )
        )
    if figures.audit_problems:
        found.append(("critical", "audit", f"audit log chain broken: {figures.audit_problems[0]}"))
    stale = figures.status != "online" and figures.latest is not None
    alerts = [
        Alert(
            figures.device_id,
            figures.kit,
            sev,
            kind,
            f"{text} (last known)" if stale and kind in _MEASURED else text,
        )
        for sev, kind, text in found
    ]
    return sorted(alerts, key=lambda a: a.rank)


_MEASURED = {"temperature", "disk", "battery"}


def _presence(f: KitFigures, limits: Thresholds, now: float) -> list[tuple[Severity, str, str]]:
    if f.status == "identity_changed":
        return [("critical", "identity", "identity changed: the kit presents another certificate")]
    if f.status != "offline":
        return []
    away = now - f.last_seen_at if f.last_seen_at else None
    if away is None:
        return [("warning", "offline", "offline, never seen since adoption")]
    if away >= limits.offline_critical_h * 3600:
        return [("critical", "offline", f"offline for {_duration(away)}")]
    if away >= limits.offline_warn_min * 60:
        return [("warning", "offline", f"offline for {_duration(away)}")]
    return []


def _temperature(f: KitFigures, limits: Thresholds) -> list[tuple[Severity, str, str]]:
    assert f.latest is not None
    now_c = f.latest.temperature_c
    if now_c is None:
        return []
    if now_c >= limits.temperature_critical_c:
        return [
            ("critical", "temperature", f"{now_c:.0f} °C (critical at {limits.temperature_critical_c:g})")
        ]
    coolest = now_c if f.coolest_c is None else min(f.coolest_c, now_c)
    if coolest >= limits.temperature_warn_c:  # hot for the whole window, not one spike
        return [
            (
                "warning",
                "temperature",
                f"{now_c:.0f} °C for {_duration(limits.sustained_s)} "
                f"(warning at {limits.temperature_warn_c:g})",
            )
        ]
    return []


def _disk(f: KitFigures, limits: Thresholds) -> list[tuple[Severity, str, str]]:
    assert f.latest is not None
    free = f.latest.disk_free_bytes
    if free is None:
        return []
    if free < limits.disk_free_critical_gib * GIB:
        return [("critical", "disk", f"{free / GIB:.2f} GiB free")]
    if free < limits.disk_free_warn_gib * GIB:
        return [("warning", "disk", f"{free / GIB:.1f} GiB free")]
    eta = _time_to_full(f.disk_earlier, f.latest)
    if eta is not None and eta < limits.disk_full_within_h * 3600:
        return [
            (
                "warning",
                "disk",
                f"{free / GIB:.1f} GiB free, full in about {_duration(eta)} at the last hour's rate",
            )
        ]
    return []


def _time_to_full(earlier: tuple[float, int] | None, latest: MetricSample) -> float | None:
    """Seconds until free space reaches zero at the rate it fell over the last hour."""
    if earlier is None or latest.disk_free_bytes is None:
        return None
    spent, elapsed = earlier[1] - latest.disk_free_bytes, latest.ts - earlier[0]
    if spent <= 0 or elapsed < 600:  # not filling, or too short a span to extrapolate
        return None
    return latest.disk_free_bytes / (spent / elapsed)


def _battery(f: KitFigures, limits: Thresholds) -> list[tuple[Severity, str, str]]:
    assert f.latest is not None
    level = f.latest.battery_percent
    if level is None:
        return []
    if level <= limits.battery_critical_percent:
        return [("critical", "battery", f"battery at {level:.0f} %")]
    if level <= limits.battery_warn_percent:
        return [("warning", "battery", f"battery at {level:.0f} %")]
    return []


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
