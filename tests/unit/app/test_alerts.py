"""Alerts from a kit's latest figures and history, with defaults and thresholds from settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.wire import MetricSample
from app.fleet.alerts import GIB, KitFigures, Thresholds, evaluate
from app.fleet.errors import Error

NOW = 1_000_000.0
LIMITS = Thresholds()


def figures(status: str = "online", last_seen: float | None = NOW, /, **sample: float | None) -> KitFigures:
    values: dict[str, float | None] = {
        "cpu_percent": 10.0,
        "memory_percent": 20.0,
        "disk_percent": 30.0,
        "temperature_c": 50.0,
        "disk_free_bytes": 50 * GIB,
        "battery_percent": None,
    } | sample
    latest = MetricSample(ts=NOW, **values)  # type: ignore[arg-type]
    return KitFigures("a" * 64, "kit-1", status, last_seen, latest)


def kinds(f: KitFigures, limits: Thresholds = LIMITS) -> list[tuple[str, str]]:
    return [(a.severity, a.kind) for a in evaluate(f, limits, NOW)]


def test_a_healthy_kit_has_no_alerts() -> None:
    assert kinds(figures()) == []


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        ({"temperature_c": 91.0}, [("critical", "temperature")]),
        ({"disk_free_bytes": GIB}, [("warning", "disk")]),
        ({"disk_free_bytes": GIB // 4}, [("critical", "disk")]),
        ({"battery_percent": 20.0}, [("warning", "battery")]),
        ({"battery_percent": 5.0}, [("critical", "battery")]),
        ({"battery_percent": 80.0, "temperature_c": None, "disk_free_bytes": None}, []),
    ],
)
def test_thresholds_on_the_latest_sample(reading: dict[str, float], expected: list[tuple[str, str]]) -> None:
    assert kinds(figures("online", NOW, **reading)) == expected


def test_a_hot_spike_is_not_a_warning_but_sustained_heat_is() -> None:
    spike = figures(temperature_c=85.0)
    assert kinds(KitFigures(**{**spike.__dict__, "coolest_c": 60.0})) == []
    assert kinds(KitFigures(**{**spike.__dict__, "coolest_c": 82.0})) == [("warning", "temperature")]


def test_a_disk_filling_fast_warns_before_it_is_low() -> None:
    f = figures(disk_free_bytes=10 * GIB)
    filling = KitFigures(**{**f.__dict__, "disk_earlier": (NOW - 3600, 20 * GIB)})  # 10 GiB an hour
    alerts = evaluate(filling, LIMITS, NOW)
    assert [(a.severity, a.kind) for a in alerts] == [("warning", "disk")]
    assert "full in about 1 h" in alerts[0].message
    steady = KitFigures(**{**f.__dict__, "disk_earlier": (NOW - 3600, 10 * GIB)})
    assert kinds(steady) == []


def test_offline_ages_into_warning_then_critical() -> None:
    assert kinds(figures("offline", NOW - 60)) == []
    assert kinds(figures("offline", NOW - 3600)) == [("warning", "offline")]
    assert kinds(figures("offline", NOW - 9 * 3600)) == [("critical", "offline")]


def test_an_away_kits_measurements_are_marked_last_known() -> None:
    alerts = evaluate(figures("offline", NOW - 3600, battery_percent=5.0), LIMITS, NOW)
    assert [(a.severity, a.kind) for a in alerts] == [("critical", "battery"), ("warning", "offline")]
    assert alerts[0].message.endswith("(last known)")


def test_identity_failures_and_broken_audit_are_reported() -> None:
    f = figures("identity_changed")
    f = KitFigures(
        **{
            **f.__dict__,
            "failed_jobs": ["benchmark nightly"],
            "audit_problems": ["entry 3 was altered after it was written"],
        }
    )
    assert sorted(kinds(f)) == [("critical", "audit"), ("critical", "identity"), ("warning", "jobs")]


def test_thresholds_come_from_settings_json(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(
        json.dumps({"alerts": {"battery_warn_percent": 50, "job_failures_warn": 3}})
    )
    limits = Thresholds.load(tmp_path)
    assert limits.battery_warn_percent == 50.0
    assert limits.job_failures_warn == 3
    assert limits.temperature_warn_c == LIMITS.temperature_warn_c
    assert kinds(figures(battery_percent=40.0), limits) == [("warning", "battery")]


@pytest.mark.parametrize(
    "bad", [{"battery_warn": 5}, {"battery_warn_percent": "low"}, {"battery_warn_percent": -1}]
)
def test_a_bad_threshold_is_refused_clearly(tmp_path: Path, bad: dict[str, object]) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"alerts": bad}))
    with pytest.raises(Error, match=r"alerts\.battery_warn"):
        Thresholds.load(tmp_path)
