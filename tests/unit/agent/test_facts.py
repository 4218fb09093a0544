"""Hardware facts against this machine's real readings: invariants, not exact values."""

from __future__ import annotations

import json
import platform
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent import facts
from agent.facts import accelerators, cpu, power, runtime, thermal
from agent.wire import CpuFacts, FactFamilies, RuntimeFacts
from tests.unit.agent.test_facts_models import extra_keys

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
flags\t\t: fpu sse sse2 avx avx2 f16c avx512f avx512_vnni

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
flags\t\t: fpu sse sse2 avx avx2 f16c avx512f avx512_vnni
"""

ALTRA_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""

BIG_LITTLE_CPUINFO = """\
processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd05

processor\t: 4
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd0b
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-data")


@pytest.fixture(scope="module")
def all_facts(data_dir: Path) -> dict[str, dict[str, Any]]:
    return facts.collect_all(data_dir=data_dir).wire()


def test_every_family_reports_availability(all_facts: dict[str, dict[str, Any]]) -> None:
    for name in facts.FAMILIES:
        family = all_facts[name]
        assert isinstance(family["available"], bool), name
        if not family["available"]:
            assert family["reason"], name


def test_facts_serialise_to_json(all_facts: dict[str, dict[str, Any]]) -> None:
    assert json.loads(json.dumps(all_facts)) == all_facts


def test_cpu_cores_and_arch(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["cpu"]
    assert family["arch"] == platform.machine()
    assert family["logical_cores"] >= 1
    physical = family["physical_cores"]
    assert physical is None or 1 <= physical <= family["logical_cores"]
    assert set(family["flags"]) == set(cpu.INFERENCE_FLAGS)
    assert set(family["int8"]) == {"accelerated", "via", "recommended", "reason"}


def test_memory_totals(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["memory"]
    assert family["total_bytes"] > family["available_bytes"] > 0
    assert family["swap_total_bytes"] >= 0


def test_disks_include_the_data_dir_filesystem(
    all_facts: dict[str, dict[str, Any]],
    data_dir: Path,
) -> None:
    family = all_facts["disks"]
    data = family["data_dir"]
    assert data["path"] == str(data_dir)
    assert 0 < data["free_bytes"] <= data["total_bytes"]
    mounts = {fs["mountpoint"]: fs for fs in family["filesystems"]}
    assert data["mountpoint"] in mounts
    assert "/" in mounts
    for fs in family["filesystems"]:
        assert fs["free_bytes"] is None or fs["free_bytes"] <= fs["total_bytes"]


def test_disks_report_a_data_dir_not_created_yet(tmp_path: Path) -> None:
    data = facts.collect_family("disks", data_dir=tmp_path / "not" / "yet").wire()["data_dir"]
    assert data["path"].endswith("yet")
    assert data["free_bytes"] <= data["total_bytes"]


def test_runtime_lists_the_cpu_provider(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["runtime"]
    assert family["available"], family.get("reason")
    assert "CPUExecutionProvider" in family["providers"]
    assert family["version"][0].isdigit()


def test_runtime_probe_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe_again() -> tuple[RuntimeFacts, bool]:
        raise AssertionError("onnxruntime probed a second time")

    runtime.collect()  # warm the cache
    monkeypatch.setattr(runtime, "_probe", probe_again)
    first = runtime.collect()
    assert first.providers is not None
    first.providers.clear()  # a caller's copy, not the cache
    assert "CPUExecutionProvider" in (runtime.collect().providers or [])


def test_network_includes_loopback(all_facts: dict[str, dict[str, Any]]) -> None:
    interfaces = {nic["name"]: nic for nic in all_facts["network"]["interfaces"]}
    assert "lo" in interfaces
    assert any(addr["address"] == "127.0.0.1" for addr in interfaces["lo"]["ipv4"])


def test_system_names_the_os(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["system"]
    assert family["os"]
    assert family["python"] == platform.python_version()
    assert set(family["kit"]) == {"vendor", "model", "serial", "board"}


def test_thermal_maximum_matches_the_sensors(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["thermal"]
    hottest = thermal.max_temperature_c()
    assert hottest is None or isinstance(hottest, float)
    if family["available"]:
        assert family["max_c"] == max(s["current_c"] for s in family["sensors"])


def test_power_battery_shape(all_facts: dict[str, dict[str, Any]]) -> None:
    family = all_facts["power"]
    if family["available"]:
        assert family["battery"]["available"] or family["supplies"]
    else:
        assert "reason" in family


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")


@pytest.fixture
def fake_pci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sysfs PCI tree: an NVIDIA GPU, a Hailo-8, a Qualcomm Wi-Fi card and a host bridge."""
    pci = tmp_path / "pci"
    _write_tree(
        pci,
        {
            "0000:01:00.0/class": "0x030000",
            "0000:01:00.0/vendor": "0x10de",
            "0000:01:00.0/device": "0x2204",
            "0000:02:00.0/class": "0x0b4000",
            "0000:02:00.0/vendor": "0x1e60",
            "0000:02:00.0/device": "0x2864",
            "0000:03:00.0/class": "0x028000",
            "0000:03:00.0/vendor": "0x17cb",
            "0000:03:00.0/device": "0x1101",
            "0000:00:00.0/class": "0x060000",
            "0000:00:00.0/vendor": "0x8086",
            "0000:00:00.0/device": "0x0d57",
        },
    )
    monkeypatch.setattr(accelerators, "PCI_DEVICES", pci)
    monkeypatch.setattr(accelerators, "USB_DEVICES", tmp_path / "usb")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def _fake_nvidia_smi(root: Path, script: str) -> None:
    _write_tree(root / "bin", {"nvidia-smi": "#!/bin/sh\n" + script})
    (root / "bin" / "nvidia-smi").chmod(0o755)


def test_accelerators_from_pci(fake_pci: Path) -> None:
    family = accelerators.collect().wire()
    found = {(dev["vendor"], dev["kind"]) for dev in family["devices"]}
    assert found == {("NVIDIA", "gpu"), ("Hailo", "accelerator")}
    assert family["problems"] == []


def test_accelerators_prefer_nvidia_smi(fake_pci: Path) -> None:
    _fake_nvidia_smi(fake_pci, 'echo "NVIDIA GeForce RTX 3090, 24576, 550.54.14, GPU-5f3e"')
    gpu, hailo = accelerators.collect().wire()["devices"]
    assert gpu["name"] == "NVIDIA GeForce RTX 3090"
    assert gpu["memory_bytes"] == 24576 * 1024 * 1024
    assert (gpu["driver"], gpu["uuid"], gpu["source"]) == ("550.54.14", "GPU-5f3e", "nvidia-smi")
    assert hailo["vendor"] == "Hailo"


def test_accelerators_report_a_broken_nvidia_smi(fake_pci: Path) -> None:
    _fake_nvidia_smi(fake_pci, 'echo "NVIDIA-SMI has failed: no driver"; exit 9')
    family = accelerators.collect().wire()
    assert family["problems"] == ["nvidia-smi failed: NVIDIA-SMI has failed: no driver"]
    assert {dev["source"] for dev in family["devices"]} == {"pci"}


def test_every_accelerator_source_fits_the_model(fake_pci: Path) -> None:
    _write_tree(fake_pci / "usb", {"1-1/idVendor": "18d1", "1-1/idProduct": "9302"})
    _fake_nvidia_smi(fake_pci, 'echo "NVIDIA A2, 15356, 550.54.14, GPU-1"')
    family = accelerators.collect()
    assert {dev.source for dev in family.devices or []} == {"nvidia-smi", "pci", "usb"}
    assert extra_keys(family) == []


Temperature = namedtuple("Temperature", "label current high critical")
Battery = namedtuple("Battery", "percent secsleft power_plugged")


def test_thermal_flattens_sensors(monkeypatch: pytest.MonkeyPatch) -> None:
    sensors = {
        "coretemp": [
            Temperature("Package id 0", 61.0, 80.0, 100.0),
            Temperature("", 58.5, None, None),
        ],
        "nvme": [Temperature("Composite", 44.9, 84.8, 84.8)],
    }
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: sensors, raising=False)
    typed = thermal.collect()
    assert extra_keys(typed) == []
    family = typed.wire()
    assert family["max_c"] == thermal.max_temperature_c() == 61.0
    assert family["sensors"][1] == {
        "sensor": "coretemp",
        "label": None,
        "current_c": 58.5,
        "high_c": None,
        "critical_c": None,
    }


def test_power_on_battery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tree(tmp_path, {"AC/type": "Mains", "AC/online": "0", "BAT0/type": "Battery"})
    monkeypatch.setattr(power, "POWER_SUPPLY", tmp_path)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: Battery(42, 3600, False), raising=False)
    typed = power.collect()
    assert extra_keys(typed) == []
    family = typed.wire()
    assert family["on_ac"] is False
    assert family["battery"] == {
        "available": True,
        "percent": 42.0,
        "plugged": False,
        "secs_left": 3600,
    }
    assert [supply["name"] for supply in family["supplies"]] == ["AC", "BAT0"]


def test_power_on_ac_has_no_time_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unlimited = Battery(100, psutil.POWER_TIME_UNLIMITED, True)
    monkeypatch.setattr(power, "POWER_SUPPLY", tmp_path)
    monkeypatch.setattr(psutil, "sensors_battery", lambda: unlimited, raising=False)
    family = power.collect().wire()
    assert family["on_ac"] is True
    assert family["battery"]["secs_left"] is None


def test_failing_collector_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> CpuFacts:
        raise PermissionError("/proc/cpuinfo is hidden")

    monkeypatch.setattr(cpu, "collect", broken)
    family = facts.collect_family("cpu")
    assert isinstance(family, CpuFacts)
    assert family.wire() == {"available": False, "reason": "PermissionError: /proc/cpuinfo is hidden"}
    everything = facts.collect_all()
    assert isinstance(everything, FactFamilies)
    assert everything.memory is not None
    assert everything.memory.available


def test_unknown_family_is_unavailable() -> None:
    family = facts.collect_family("gpu")
    assert family.available is False
    assert "cpu" in (family.reason or "")


def test_parse_x86_cpuinfo() -> None:
    info = cpu.parse_cpuinfo(X86_CPUINFO)
    assert info.model == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    assert {"avx2", "avx512f", "avx512_vnni", "f16c"} <= info.flags
    assert info.arm_parts == ()


def test_parse_ampere_altra_cpuinfo() -> None:
    info = cpu.parse_cpuinfo(ALTRA_CPUINFO)
    assert info.model == "ARM Neoverse-N1"
    assert {"asimd", "asimddp", "asimdhp"} <= info.flags
    assert info.arm_parts == (("0x41", "0xd0c"),)


def test_parse_big_little_cpuinfo_names_both_core_types() -> None:
    assert cpu.parse_cpuinfo(BIG_LITTLE_CPUINFO).model == "ARM Cortex-A55 + Cortex-A76"


def test_parse_empty_cpuinfo() -> None:
    assert cpu.parse_cpuinfo("") == cpu.CpuInfo()


@pytest.mark.parametrize(
    ("arch", "flags", "via"),
    [
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "vnni"),
        ("x86_64", {"avx2", "avx_vnni"}, "vnni"),
        ("x86_64", {"avx512_vnni", "amx_tile", "amx_int8"}, "amx"),
        ("x86_64", {"avx2", "avx512f"}, None),
        ("aarch64", {"asimd", "asimddp"}, "dotprod"),
        ("aarch64", {"asimd"}, None),
        ("armv7l", {"neon"}, None),
        ("riscv64", set(), None),
    ],
)
def test_int8_advice(arch: str, flags: set[str], via: str | None) -> None:
    advice = cpu.int8_advice(arch, flags)
    assert advice.via == via
    assert advice.accelerated is advice.recommended is (via is not None)
    assert (advice.reason or "").endswith(".")
    assert "markedly" not in (advice.reason or ""), "no speed promised without a measurement"
    if via is not None:
        assert "likely faster" in (advice.reason or "")
        assert "`kitfleet quantize`" in (advice.reason or ""), "says what measures it"
