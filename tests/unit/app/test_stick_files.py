"""The stick's own files beside the wheels: the units install.sh fills in, and the polkit grant."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]
UNITS = ("kitfleet-agent.service", "kitfleet-agent-upgrade.service", "kitfleet-agent-upgrade.path")


def _stick_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kitfleet_stick", REPO / "packaging" / "stick.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kitfleet_stick"] = module
    spec.loader.exec_module(module)
    return module


def test_the_stick_carries_the_upgrade_units_and_the_clock_grant(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()  # the wheelhouse made it
    _stick_module().write_stick(tmp_path, {"targets": {}, "files": {}, "requirement": "kitfleet[agent]"})
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "install.sh",
        "kitfleet-agent.service.in",
        "kitfleet-agent-upgrade.service.in",
        "kitfleet-agent-upgrade.path.in",
        "50-kitfleet-clock.rules",
    } <= names
    upgrade = (tmp_path / "kitfleet-agent-upgrade.service.in").read_text()
    assert "ExecStart=@PREFIX@/current/bin/kitfleet-agent apply-upgrade --data-dir @DATA_DIR@" in upgrade
    assert (
        "PathExists=@DATA_DIR@/upgrade/request.json"
        in (tmp_path / "kitfleet-agent-upgrade.path.in").read_text()
    )
    assert '"org.freedesktop.timedate1.set-time"' in (tmp_path / "50-kitfleet-clock.rules").read_text()
    # every placeholder in the units is one install.sh fills in
    script = (tmp_path / "install.sh").read_text()
    for unit in (
        "kitfleet-agent.service.in",
        "kitfleet-agent-upgrade.service.in",
        "kitfleet-agent-upgrade.path.in",
    ):
        for placeholder in {
            p for p in ("@AGENT@", "@PREFIX@", "@DATA_DIR@") if p in (tmp_path / unit).read_text()
        }:
            assert f'-e "s|{placeholder}|' in script, (unit, placeholder)
    assert "kitfleet-agent-upgrade.path" in script
    assert subprocess.run(["sh", "-n", str(tmp_path / "install.sh")], check=False).returncode == 0
