"""`kitfleet facts` reads as a person expects: units, local times with their age; --json the raw data."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.identity import load_or_create
from agent.wire import FactFamilies
from app.cli import main
from app.cli.facts_text import facts_lines
from app.fleet.inventory import Inventory
from tests.unit.app.samples import make_kit

ALPHA = "a1" * 32
BOOTED = time.time() - 2 * 3600  # two hours ago

FAMILIES: dict[str, dict[str, Any]] = {
    "cpu": {
        "available": True,
        "model": "Ampere Altra",
        "arch": "aarch64",
        "logical_cores": 80,
        "frequency_mhz": {"current": 2999.7, "max": 3000.0},
        "flags": {"avx2": False, "neon": True, "dotprod": True, "fp16": True},
        "int8": {"accelerated": True, "via": "dotprod", "recommended": True, "reason": "fast."},
    },
    "memory": {"available": True, "total_bytes": 64 * 2**30, "available_bytes": 512 * 2**20},
    "runtime": {
        "available": True,
        "name": "onnxruntime",
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    },
    "system": {"available": True, "os": "Ubuntu 22.04.4 LTS", "boot_time": BOOTED},
    "power": {
        "available": True,
        "on_ac": False,
        "battery": {"available": True, "percent": 42.0, "plugged": False, "secs_left": 5400},
        "supplies": [{"name": "AC", "type": "Mains", "online": False, "status": None}],
        "draw_w": 17.25,  # a newer kit's field: its unit still shows
    },
    "thermal": {
        "available": True,
        "sensors": [
            {"sensor": "coretemp", "label": "Package", "current_c": 61.0, "high_c": 80.0, "critical_c": None}
        ],
        "max_c": 61.0,
    },
    "network": {
        "available": True,
        "interfaces": [{"name": "lo", "up": True, "speed_mbps": 1000, "ipv4": [{"address": "127.0.0.1"}]}],
    },
    "disks": {"available": False, "reason": "no filesystems readable"},
}


def test_facts_show_human_units() -> None:
    booted = time.time() - 2 * 3600 - 60  # set here, not at collection: a long suite would age it
    families = {**FAMILIES, "system": {**FAMILIES["system"], "boot_time": booted}}
    lines = facts_lines(FactFamilies.model_validate(families))
    assert "INT8 models: int8 dot-product (dotprod). fast." in lines
    assert "  total: 64.0 GiB" in lines
    assert "  available: 512.0 MiB" in lines
    assert "  frequency: current 3000 MHz, max 3000 MHz" in lines
    assert "  flags: neon, dotprod, fp16" in lines
    assert "  battery: available yes, percent 42 %, plugged no, time left 1 h 30 min" in lines
    assert "  draw: 17.2 W" in lines
    assert "    Package: sensor coretemp, current 61.0 °C, high 80.0 °C, critical —" in lines
    assert "  max: 61.0 °C" in lines
    assert "    lo: up yes, speed 1000 Mb/s" in lines
    assert "        127.0.0.1" in lines
    assert "[disks] not available: no filesystems readable" in lines
    boot = next(line for line in lines if line.startswith("  boot time: "))
    assert boot == f"  boot time: {time.strftime('%Y-%m-%d %H:%M', time.localtime(booted))} (2 h ago)"
    assert not any(str(64 * 2**30) in line or str(int(booted)) in line for line in lines)


def test_facts_say_which_precision_each_provider_favours() -> None:
    lines = facts_lines(FactFamilies.model_validate(FAMILIES))
    start = lines.index("Precision each execution provider favours:")
    cuda, cpu = lines[start + 1], lines[start + 2]
    assert cuda.split()[:2] == ["CUDAExecutionProvider", "fp16"]
    assert cpu.split()[:2] == ["CPUExecutionProvider", "int8"]
    assert "dot-product" in cpu
    assert lines.index("[cpu]") > start + 2  # above the families, where the verdicts are


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An inventory holding one kit that is away: its address on loopback, where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    identity = load_or_create(tmp_path)  # a real certificate to pin
    kit = replace(
        make_kit(ALPHA, "alpha", host="127.0.0.1", port=port), cert_pem=identity.cert_path.read_text()
    )
    (tmp_path / "home").mkdir()
    inventory = Inventory(tmp_path / "home")
    try:
        inventory.save(kit)
        inventory.save_facts(ALPHA, FactFamilies.model_validate(FAMILIES))
    finally:
        inventory.close()
    return tmp_path / "home"


def test_kitfleet_facts_prints_units_and_json_prints_the_raw_data(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KITFLEET_MDNS_INTERFACES", "127.0.0.1")  # looking for the kit elsewhere
    assert main(["--home", str(home), "facts", "alpha"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("alpha is offline; last-known facts from ")
    assert "  total: 64.0 GiB" in text
    assert "CPUExecutionProvider" in "\n".join(text)

    assert main(["--home", str(home), "facts", "alpha", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["live"] is False
    assert data["families"] == FAMILIES  # as the kit sent it: bytes, epoch seconds
    assert isinstance(data["collected_at"], float)
    assert [p["precision"] for p in data["precision_by_provider"]] == ["fp16", "int8"]
