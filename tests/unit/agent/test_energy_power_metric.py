"""The metrics ring's power figure: measured watts where the kit can, None where it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.db import Database
from agent.metrics.power import PowerGauge
from agent.metrics.ring import MetricRing, take_sample


def _rapl(sysfs: Path, uj: int) -> None:
    pkg = sysfs / "class/powercap/intel-rapl:0"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "name").write_text("package-0\n")
    (pkg / "max_energy_range_uj").write_text("262143328850\n")
    (pkg / "energy_uj").write_text(f"{uj}\n")


def test_power_is_measured_watts_between_samples(tmp_path: Path) -> None:
    _rapl(tmp_path, 0)
    gauge = PowerGauge(tmp_path)
    _rapl(tmp_path, 5_000_000)
    watts = gauge.watts()
    assert watts is not None
    assert watts > 0
    _rapl(tmp_path, 5_000_000)  # nothing drawn since
    assert gauge.watts() == 0


def test_no_meter_no_power_figure(tmp_path: Path) -> None:
    assert PowerGauge(tmp_path).watts() is None, "an estimate is not shown as a measurement"


def test_a_battery_that_charges_gives_no_figure_for_that_interval(tmp_path: Path) -> None:
    bat = tmp_path / "class/power_supply/BAT0"
    bat.mkdir(parents=True)
    (bat / "type").write_text("Battery\n")
    (bat / "status").write_text("Discharging\n")
    (bat / "energy_now").write_text("50000000\n")
    gauge = PowerGauge(tmp_path)
    (bat / "status").write_text("Charging\n")
    assert gauge.watts() is None
    (bat / "status").write_text("Discharging\n")
    assert gauge.watts() is None, "the first interval after charging has no start to measure from"
    (bat / "energy_now").write_text("49000000\n")
    watts = gauge.watts()
    assert watts is not None, "measured again once unplugged"
    assert watts > 0


def test_the_ring_keeps_power_w(tmp_path: Path, db: Database) -> None:
    _rapl(tmp_path / "sys", 0)
    ring = MetricRing(db, capacity=10)
    gauge = PowerGauge(tmp_path / "sys")
    _rapl(tmp_path / "sys", 2_000_000)
    ring.append(take_sample(str(tmp_path), gauge))
    latest = ring.latest()
    assert latest is not None
    assert latest.power_w is not None
    assert latest.power_w > 0


def test_the_laptops_history_keeps_power_w(tmp_path: Path) -> None:
    """The app's inventory stores the kit's power figure beside the others (its step 3)."""
    # CI runs tests/unit/agent under the kits' Pythons with only the agent's packages installed
    pytest.importorskip("sqlite_utils", reason="the app's packages (pip install '.[app]')")
    from agent.wire import MetricSample
    from app.fleet.history import MetricsHistory
    from app.fleet.inventory import Inventory

    inventory = Inventory(tmp_path)
    try:
        history = MetricsHistory(inventory)
        first = MetricSample(seq=1, ts=10.0, cpu_percent=1, memory_percent=2, disk_percent=3, power_w=7.5)
        history.merge("kit", [first])
        history.merge("kit", [first.model_copy(update={"seq": 2, "ts": 20.0, "power_w": None})])
        assert [s.power_w for s in history.series("kit")] == [7.5, None]
    finally:
        inventory.close()
