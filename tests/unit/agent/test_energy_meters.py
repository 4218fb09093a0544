"""Energy meters read through a fake sysfs tree; the real RAPL when this machine has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.energy import GRANT_HINT, FallbackMeter, NotMeasured, RaplMeter
from agent.energy.battery import BatteryMeter
from agent.energy.estimate import EstimateMeter

MAX_UJ = 262_143_328_850


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _rapl(sysfs: Path, package_uj: int, dram_uj: int | None = None) -> Path:
    pkg = sysfs / "class/powercap/intel-rapl:0"
    _write(pkg / "name", "package-0")
    _write(pkg / "max_energy_range_uj", str(MAX_UJ))
    _write(pkg / "energy_uj", str(package_uj))
    _write(sysfs / "class/powercap/intel-rapl:0:0/name", "core")  # inside the package: not added
    _write(sysfs / "class/powercap/intel-rapl:0:0/energy_uj", "5")
    if dram_uj is not None:
        _write(sysfs / "class/powercap/intel-rapl:0:1/name", "dram")
        _write(sysfs / "class/powercap/intel-rapl:0:1/max_energy_range_uj", "65532610987")
        _write(sysfs / "class/powercap/intel-rapl:0:1/energy_uj", str(dram_uj))
    return pkg


def _set(sysfs: Path, domain: str, uj: int) -> None:
    (sysfs / f"class/powercap/{domain}/energy_uj").write_text(f"{uj}\n")


def test_rapl_adds_package_and_dram(tmp_path: Path) -> None:
    _rapl(tmp_path, 1_000_000, 500_000)
    meter = RaplMeter(tmp_path)
    token = meter.start()
    _set(tmp_path, "intel-rapl:0", 13_000_000)  # +12 J
    _set(tmp_path, "intel-rapl:0:1", 2_500_000)  # +2 J
    _set(tmp_path, "intel-rapl:0:0", 9_999_999)  # core: part of the package, not counted twice
    reading = meter.stop(token)
    assert reading.source == "rapl"
    assert reading.joules == pytest.approx(14.0)
    assert "package-0" in reading.note
    assert "dram" in reading.note


def test_rapl_counter_that_wraps_mid_job(tmp_path: Path) -> None:
    _rapl(tmp_path, MAX_UJ - 3_000_000)
    meter = RaplMeter(tmp_path)
    token = meter.start()
    _set(tmp_path, "intel-rapl:0", MAX_UJ - 1_000_000)
    meter.sample(token)  # +2 J
    _set(tmp_path, "intel-rapl:0", 4_000_000)  # wrapped: +1 J to the top, +4 J after
    meter.sample(token)
    _set(tmp_path, "intel-rapl:0", MAX_UJ - 500_000)  # nearly a whole lap, seen thanks to sample()
    reading = meter.stop(token)
    assert reading.joules == pytest.approx(2 + 5 + (MAX_UJ - 4_500_000) / 1e6)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: a mode-000 counter is still readable")
def test_unreadable_rapl_falls_back_to_the_estimate_saying_how_to_grant(tmp_path: Path) -> None:
    pkg = _rapl(tmp_path, 1_000_000)
    (pkg / "energy_uj").chmod(0o000)
    _unreadable_falls_back(tmp_path)


def test_rapl_permission_error_names_the_udev_rule_and_unit_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recent kernels make energy_uj root-only; as root here, the refusal is made to happen."""
    _rapl(tmp_path, 1_000_000)
    real_read = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(NotMeasured) as refused:
        RaplMeter(tmp_path)
    assert "root only" in str(refused.value)
    _unreadable_falls_back(tmp_path)


def _unreadable_falls_back(sysfs: Path) -> None:
    meter = FallbackMeter(sysfs, tdp_w=20)
    assert meter.source == "estimate"
    reading = meter.stop(meter.start())
    assert reading.source == "estimate"
    assert "20 W TDP" in reading.note
    assert GRANT_HINT in reading.note
    assert "/etc/udev/rules.d/" in GRANT_HINT
    assert "ExecStartPre=+" in GRANT_HINT


def _battery(sysfs: Path, status: str, energy_uwh: int | None = None, charge_uah: int | None = None) -> Path:
    bat = sysfs / "class/power_supply/BAT0"
    _write(bat / "type", "Battery")
    _write(bat / "status", status)
    _write(sysfs / "class/power_supply/AC/type", "Mains")
    if energy_uwh is not None:
        _write(bat / "energy_now", str(energy_uwh))
    if charge_uah is not None:
        _write(bat / "charge_now", str(charge_uah))
        _write(bat / "voltage_now", "12000000")  # 12 V
    return bat


def test_battery_discharge_from_energy_now(tmp_path: Path) -> None:
    bat = _battery(tmp_path, "Discharging", energy_uwh=50_000_000)
    meter = FallbackMeter(tmp_path)
    assert meter.source == "battery"
    token = meter.start()
    (bat / "energy_now").write_text("49990000\n")  # 10 mWh = 36 J
    reading = meter.stop(token)
    assert reading.source == "battery"
    assert reading.joules == pytest.approx(36.0)


def test_battery_discharge_from_charge_and_voltage(tmp_path: Path) -> None:
    bat = _battery(tmp_path, "Discharging", charge_uah=4_000_000)
    meter = BatteryMeter(tmp_path)
    token = meter.start()
    (bat / "charge_now").write_text("3999000\n")  # 1 mAh × 12 V = 43.2 J
    assert meter.stop(token).joules == pytest.approx(43.2)


def test_battery_that_starts_charging_mid_job_is_excluded_and_said(tmp_path: Path) -> None:
    bat = _battery(tmp_path, "Discharging", energy_uwh=50_000_000)
    meter = FallbackMeter(tmp_path, tdp_w=15)
    token = meter.start()
    (bat / "status").write_text("Charging\n")
    (bat / "energy_now").write_text("51000000\n")
    reading = meter.stop(token)
    assert reading.source == "estimate"
    assert "charging" in reading.note
    assert "excluded" in reading.note
    assert "15 W TDP" in reading.note


def test_battery_on_mains_from_the_start_is_not_used(tmp_path: Path) -> None:
    _battery(tmp_path, "Charging", energy_uwh=50_000_000)
    with pytest.raises(NotMeasured, match="charging"):
        BatteryMeter(tmp_path)


def _cpu_spent() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def test_estimate_is_cpu_time_times_tdp_per_core() -> None:
    # The process's other threads (left by earlier tests) add CPU time too, so the
    # estimate is bounded by what this test burned and what the whole process spent.
    meter = EstimateMeter(tdp_w=16, cores=4)
    before = _cpu_spent()
    token = meter.start()
    burned_from = _cpu_spent()
    while _cpu_spent() - burned_from < 0.05:
        pass  # burn a little CPU
    burned = _cpu_spent() - burned_from
    reading = meter.stop(token)
    spent = _cpu_spent() - before
    assert reading.source == "estimate"
    assert burned * 16 / 4 - 1e-9 <= reading.joules <= spent * 16 / 4 + 1e-9
    assert reading.avg_watts == pytest.approx(reading.joules / reading.seconds)
    assert "16 W TDP" in reading.note


def test_nothing_to_measure_with_falls_back_to_the_estimate(tmp_path: Path) -> None:
    meter = FallbackMeter(tmp_path, tdp_w=15)
    reading = meter.stop(meter.start())
    assert reading.source == "estimate"
    assert "no RAPL counters" in reading.note
    assert "no battery" in reading.note


REAL_RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def test_real_rapl_on_this_machine() -> None:
    if not REAL_RAPL.exists():
        pytest.skip("this machine has no RAPL counters (/sys/class/powercap/intel-rapl:0 absent)")
    try:
        meter = RaplMeter()
    except NotMeasured as exc:
        pytest.skip(f"RAPL present but not readable here: {exc}")
    token = meter.start()
    sum(i * i for i in range(200_000))
    reading = meter.stop(token)
    assert reading.source == "rapl"
    assert 0 <= reading.avg_watts < 2000
