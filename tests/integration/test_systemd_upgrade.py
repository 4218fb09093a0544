"""An agent upgrade by bundle on the systemd layout, for real but without systemd as PID 1: the
agent runs as an unprivileged user (`nobody`, standing in for kitfleet-agent) from `<root>/current`
in a root-owned install root it cannot write, so the bundle's upgrade is staged in its data dir;
then `kitfleet-agent apply-upgrade` runs as root, as kitfleet-agent-upgrade.service would, with
`--restart-command` (the documented setting for hosts without systemd) restarting the agent under
the user-level supervisor. A build that passes the trial but fails where the service runs it is
switched to, never answers, and is switched back; a good one is switched to and serves. The
agent's journal records both outcomes when it starts again."""

from __future__ import annotations

import json
import os
import platform
import pwd
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.bundles.upgrade import install_venv
from agent.toolkit.wheelhouse import MANIFEST, HouseManifest, target_key, venv_name
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet
from tests.wheelhouse import broken_copy, wheelhouse

__all__ = ["wheelhouse"]

pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"),
]
SUPERVISOR = Path(__file__).resolve().parents[2] / "app" / "provision" / "supervisor.py"


class SystemdKit:
    """The provision layout's systemd shape: root-owned `<root>/venvs` and `current`, a data dir
    owned by the service user, the agent run as that user."""

    def __init__(self, base: Path, data_dir: Path, user: pwd.struct_passwd) -> None:
        self.base, self.root, self.data_dir, self.user = base, base / "opt", data_dir, user
        self.pid_file = self.root / "run" / "supervisor.pid"
        self.log = self.root / "service.log"

    def as_user(self) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.user.pw_uid}",
            f"--regid={self.user.pw_gid}",
            "--clear-groups",
            "--",
        ]

    def supervisor(self, action: str) -> list[str]:
        command = [
            sys.executable,
            str(SUPERVISOR),
            action,
            "--pid-file",
            str(self.pid_file),
            "--log",
            str(self.log),
        ]
        if action == "start":
            agent = self.root / "current" / "bin" / "kitfleet-agent"
            command += ["--", *self.as_user(), str(agent), "run", "--data-dir", str(self.data_dir)]
            command += ["--host", "127.0.0.1", "--port", "0", "--no-mdns", "--name", "kit"]
        return command

    def restart_script(self) -> Path:
        """What `--restart-command` runs here in place of `systemctl restart kitfleet-agent`."""
        script = self.base / "restart-agent"
        stop, start = shlex.join(self.supervisor("stop")), shlex.join(self.supervisor("start"))
        script.write_text(f"#!/bin/sh\nset -e\n{stop}\n{start}\n")
        script.chmod(0o755)
        return script

    def agent_pid(self) -> int:
        return int(json.loads(Path(f"{self.pid_file}.state").read_text())["child_pid"])

    def serving_venv(self) -> str:
        maps = Path(f"/proc/{self.agent_pid()}/maps").read_text()
        venvs = {p.name for p in (self.root / "venvs").iterdir() if str(p) + "/lib/" in maps}
        assert len(venvs) == 1, venvs
        return venvs.pop()

    def current(self) -> str:
        return Path(os.path.realpath(self.root / "current")).name

    def health(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                port = int((self.data_dir / "agent.port").read_text())
                return dict(httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=False, timeout=3).json())
            except (OSError, ValueError, httpx.HTTPError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise AssertionError(f"no health answer: {last}; log:\n{self.log.read_text()}")

    def stage(self, bundle: Path) -> dict[str, Any]:
        """The technician imports on the kit as the service user: the running agent stages it."""
        stick = self.base / "stick" / bundle.name
        shutil.copyfile(bundle, stick)
        stick.chmod(0o644)
        agent = self.root / "current" / "bin" / "kitfleet-agent"
        done = subprocess.run(
            [*self.as_user(), str(agent), "import", str(stick), "--data-dir", str(self.data_dir), "--json"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def apply(self) -> tuple[int, dict[str, Any]]:
        """root's oneshot: `kitfleet-agent apply-upgrade`, from the agent in `current`."""
        agent = self.root / "current" / "bin" / "kitfleet-agent"
        done = subprocess.run(
            [
                str(agent), "apply-upgrade", "--data-dir", str(self.data_dir), "--venvs", str(self.root),
                "--user", self.user.pw_name, "--restart-command", str(self.restart_script()),
                "--health-timeout", "60", "--json",
            ],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        return done.returncode, dict(json.loads(done.stdout))


@pytest.fixture
def kit(start_agent: AgentFactory, adopt: Any, wheelhouse: Path) -> Iterator[SystemdKit]:
    agent = start_agent("kit", mdns=False)
    adopt(agent)
    agent.stop()
    user = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="kitfleet-systemd-"))
    base.chmod(0o755)  # the service user reaches its venv and data dir through it, as through /opt
    data = base / "data"
    shutil.copytree(agent.data_dir, data)
    for path in (data, *data.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    data.chmod(0o700)
    (base / "stick").mkdir(mode=0o755)
    kit = SystemdKit(base, data, user)
    manifest = HouseManifest.parse(json.loads((wheelhouse / MANIFEST).read_text()))
    names = manifest.wheels_for(target_key(platform.machine(), sys.version_info[:2])) or []
    venv = kit.root / "venvs" / venv_name(manifest.version, "20260101000000")
    # On the system's interpreter, as on a kit: the service user cannot reach one under /root.
    python = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
    if not python.exists():
        pytest.skip(f"needs {python} (the tests' Python's version, installed system-wide)")
    old = os.umask(0o022)
    try:
        install_venv(manifest, names, wheelhouse, venv, str(python))
    finally:
        os.umask(old)
    (kit.root / "current").symlink_to(os.path.relpath(venv, kit.root))
    subprocess.run(kit.supervisor("start"), check=True, timeout=60, capture_output=True)
    try:
        yield kit
    finally:
        subprocess.run(kit.supervisor("stop"), check=False, timeout=60, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _create(fleet: Fleet, out: Path, house: Path) -> dict[str, Any]:
    done = kitfleet(
        fleet.settings.home, "bundle", "create", "--out", str(out), "--kit", "kit", "--json",
        "--agent-upgrade", str(house),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _upgrade_action(data_dir: Path, sha: str, want: str, timeout: float = 60.0) -> dict[str, Any]:
    """The bundle journal's agent_upgrade action once the agent recorded root's outcome."""
    deadline, row = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        with sqlite3.connect(data_dir / "agent.db", timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM bundle_actions WHERE bundle_sha256 = ? AND kind = 'agent_upgrade'", (sha,)
            ).fetchone()
        if row is not None and json.loads(row["detail"]).get("applied_by_root") == want:
            return dict(row)
        time.sleep(0.25)
    raise AssertionError(f"the journal has {dict(row) if row else None}")


def test_a_staged_upgrade_applied_by_root_switches_and_serves_or_goes_back(
    kit: SystemdKit, fleet: Fleet, wheelhouse: Path, tmp_path: Path
) -> None:
    first = kit.health()
    old_venv = kit.current()
    assert kit.serving_venv() == old_venv

    # Passes the trial run (as the service user) but fails where the service runs it.
    only_on_trial = (
        "_trial_run = run\n"
        "def run(settings):\n"
        "    if '.upgrade-trial-' not in str(settings.data_dir):\n"
        "        raise SystemExit('deliberately broken outside the trial')\n"
        "    _trial_run(settings)"
    )
    late = broken_copy(wheelhouse, tmp_path / "late", "agent/server.py", only_on_trial)
    late_sha = _create(fleet, tmp_path / "late.kfb", late)["sha256"]
    staged = kit.stage(tmp_path / "late.kfb")
    assert staged["applied"][-1]["type"] == "agent_upgrade"
    request = json.loads((kit.data_dir / "upgrade" / "request.json").read_text())
    assert request["bundle"] == late_sha
    assert kit.current() == old_venv  # the agent could not, and did not, touch the install root

    code, outcome = kit.apply()
    assert code == 1, outcome
    assert outcome["outcome"] == "reverted", outcome
    assert kit.current() == old_venv
    assert kit.health()["device_id"] == first["device_id"]
    assert kit.serving_venv() == old_venv
    assert sorted(p.name for p in (kit.root / "venvs").iterdir()) == [old_venv]
    assert "deliberately broken outside the trial" in kit.log.read_text()
    assert not (kit.data_dir / "upgrade" / "request.json").exists()
    failed = _upgrade_action(kit.data_dir, late_sha, "reverted")
    assert failed["outcome"] == "failed"

    # A good one: staged, applied by root, the agent restarted into it.
    good_sha = _create(fleet, tmp_path / "good.kfb", wheelhouse)["sha256"]
    kit.stage(tmp_path / "good.kfb")
    code, outcome = kit.apply()
    assert code == 0, outcome
    assert outcome["outcome"] == "applied", outcome
    new_venv = outcome["new"]
    assert kit.current() == new_venv != old_venv
    assert kit.health()["device_id"] == first["device_id"]
    assert kit.serving_venv() == new_venv
    assert sorted(p.name for p in (kit.root / "venvs").iterdir()) == sorted([old_venv, new_venv])
    assert not (kit.data_dir / "upgrade" / "wheels").exists()
    done = _upgrade_action(kit.data_dir, good_sha, "switched")  # journalled by the new agent itself
    assert done["outcome"] == "done"
    venv_files = [p for p in (kit.root / "venvs" / new_venv).rglob("*") if not p.is_symlink()]
    assert all(p.stat().st_uid == 0 for p in venv_files[:200])  # root's, the agent only reads it

    # The same request again (the path unit firing twice) changes nothing.
    code, outcome = kit.apply()
    assert (code, outcome["outcome"]) == (0, "nothing")
