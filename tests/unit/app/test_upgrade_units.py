"""The systemd units of an agent upgrade under systemd (app/provision/service.py): the root
oneshot and the path unit that starts it, as provisioning and the .deb install them, pass
`systemd-analyze verify`, and the agent's own unit keeps its hardening (only its data dir)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.provision.service import (
    UPGRADE_PATH,
    UPGRADE_SERVICE,
    systemd_unit,
    upgrade_path_unit,
    upgrade_service_unit,
)


def _write_units(tmp_path: Path) -> tuple[Path, Path, Path]:
    root, data, units = tmp_path / "opt", tmp_path / "data", tmp_path / "units"
    (root / "current" / "bin").mkdir(parents=True)
    data.mkdir()
    units.mkdir()
    agent = root / "current" / "bin" / "kitfleet-agent"  # verify wants an executable there
    agent.write_text(f"#!{sys.executable}\n")
    agent.chmod(0o755)
    (units / "kitfleet-agent.service").write_text(systemd_unit(str(agent), str(data)))
    (units / UPGRADE_SERVICE).write_text(upgrade_service_unit(str(root), str(data)))
    (units / UPGRADE_PATH).write_text(upgrade_path_unit(str(data)))
    return root, data, units


def _parse(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    return unit


def test_systemd_analyze_verifies_the_upgrade_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (apt install systemd)")
    _, _, units = _write_units(tmp_path)
    names = ["kitfleet-agent.service", UPGRADE_SERVICE, UPGRADE_PATH]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{n}" for n in names)],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "kitfleet-agent" not in said, said  # no warning names one of our units


def test_the_oneshot_writes_only_the_install_root_and_data_dir_and_the_agent_unit_is_unchanged(
    tmp_path: Path,
) -> None:
    root, data, units = _write_units(tmp_path)
    oneshot = _parse((units / UPGRADE_SERVICE).read_text())["Service"]
    assert oneshot["Type"] == "oneshot"
    assert oneshot["ReadWritePaths"].split() == [str(root), str(data)]
    assert oneshot["ProtectSystem"] == "strict"
    assert oneshot["NoNewPrivileges"] == "yes"
    assert "apply-upgrade" in oneshot["ExecStart"]
    assert "CAP_SYS_ADMIN" not in oneshot["CapabilityBoundingSet"]
    agent = _parse((units / "kitfleet-agent.service").read_text())["Service"]
    assert agent["ReadWritePaths"] == str(data)  # the agent still writes only its data dir
    assert agent["CapabilityBoundingSet"] == ""
    assert agent["User"] == "kitfleet-agent"
    watch = _parse((units / UPGRADE_PATH).read_text())
    assert watch["Path"]["PathExists"] == f"{data}/upgrade/request.json"
    assert watch["Path"]["Unit"] == UPGRADE_SERVICE
