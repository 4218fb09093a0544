"""An agent upgrade by bundle, for real (issue 22): a kit installed as provisioning installs it
(`<root>/venvs/<venv>`, `<root>/current`, the user-level supervisor) from a wheelhouse built from
this checkout, serving; `kitfleet bundle create --agent-upgrade WHEELHOUSE` and the kit's own
`kitfleet-agent import`. A wheelhouse whose agent passes the import check but cannot start is
refused by the trial run, the previous agent serving throughout; one that passes the trial but
fails where the kit runs it is switched to, fails, and the supervisor puts the previous agent
back; a good one is installed into a new venv, `current` switched, and the supervisor restarts the
agent into it. The laptop learns all three outcomes from the kit's receipt."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.bundles.upgrade import MARKER, install_venv
from agent.toolkit.wheelhouse import MANIFEST, HouseManifest, target_key, venv_name
from app.fleet.receipts.store import KitImport, ReceiptStore
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet
from tests.wheelhouse import broken_copy, wheelhouse

__all__ = ["wheelhouse"]  # the session fixture, imported so pytest finds it

# Three venvs installed offline from the wheelhouse and two agent restarts: about two minutes
# here (2 cores), so not `slow`; the room is for a loaded machine and a wheelhouse rebuild.
pytestmark = pytest.mark.timeout(900)
SUPERVISOR = Path(__file__).resolve().parents[2] / "app" / "provision" / "supervisor.py"


class Kit:
    """A kit as provisioning leaves it with the user-level service: the agent runs from
    `<root>/current` under the supervisor, on a loopback port of its own choosing."""

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root, self.data_dir = root, data_dir
        self.pid_file = root / "run" / "supervisor.pid"

    def install_first(self, house: Path) -> Path:
        manifest = HouseManifest.parse(json.loads((house / MANIFEST).read_text()))
        names = manifest.wheels_for(target_key(platform.machine(), sys.version_info[:2])) or []
        venv = self.root / "venvs" / venv_name(manifest.version, "20260101000000")
        install_venv(manifest, names, house, venv)  # the kit's own installer, from the same wheels
        (self.root / "current").symlink_to(os.path.relpath(venv, self.root))
        return venv

    def supervise(self, action: str) -> None:
        agent = self.root / "current" / "bin" / "kitfleet-agent"
        command = [sys.executable, str(SUPERVISOR), action, "--pid-file", str(self.pid_file)]
        command += ["--log", str(self.root / "service.log")]
        if action == "start":
            command += ["--", str(agent), "run", "--data-dir", str(self.data_dir)]
            command += ["--host", "127.0.0.1", "--port", "0", "--no-mdns", "--name", "kit"]
        subprocess.run(command, check=True, timeout=60, capture_output=True)

    def agent_pid(self) -> int:
        return int(json.loads(Path(f"{self.pid_file}.state").read_text())["child_pid"])

    def serving_venv(self) -> str:
        """The venv the running agent's Python loaded the agent from (real paths in its maps)."""
        maps = Path(f"/proc/{self.agent_pid()}/maps").read_text()
        venvs = {p.name for p in (self.root / "venvs").iterdir() if str(p) + "/lib/" in maps}
        assert len(venvs) == 1, venvs
        return venvs.pop()

    def current(self) -> str:
        return Path(os.path.realpath(self.root / "current")).name

    def health(self, timeout: float = 60.0, not_pid: int | None = None) -> dict[str, Any]:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                if not_pid is None or self.agent_pid() != not_pid:
                    port = int((self.data_dir / "agent.port").read_text())
                    answer = httpx.get(f"https://127.0.0.1:{port}/v1/health", verify=False, timeout=3)
                    return dict(answer.json())
            except (OSError, ValueError, KeyError, httpx.HTTPError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise AssertionError(f"no health answer: {last}; log:\n{(self.root / 'service.log').read_text()}")

    def import_bundle(self, bundle: Path) -> subprocess.CompletedProcess[str]:
        agent = self.root / "current" / "bin" / "kitfleet-agent"  # as the technician would, on the kit
        return subprocess.run(
            [str(agent), "import", str(bundle), "--data-dir", str(self.data_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )


@pytest.fixture
def kit(start_agent: AgentFactory, adopt: Any, tmp_path: Path, wheelhouse: Path) -> Iterator[Kit]:
    agent = start_agent("kit", mdns=False)
    adopt(agent)  # the kit learns the app's key
    agent.stop()
    kit = Kit(tmp_path / "kit", agent.data_dir)
    kit.install_first(wheelhouse)
    kit.supervise("start")
    try:
        yield kit
    finally:
        kit.supervise("stop")


def _create_for(fleet: Fleet, out: Path, kit: str, house: Path) -> dict[str, Any]:
    done = kitfleet(
        fleet.settings.home, "bundle", "create", "--out", str(out), "--kit", kit, "--json",
        "--agent-upgrade", str(house),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _create(fleet: Fleet, out: Path, house: Path) -> dict[str, Any]:
    return _create_for(fleet, out, "kit", house)


def _journal(data_dir: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(data_dir / "agent.db", timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM bundle_actions ORDER BY rowid").fetchall()


def _received(kit: Kit, fleet: Fleet, out: Path) -> list[KitImport]:
    """The kit exports a receipt, the laptop receives it: the imports as its inventory has them."""
    agent = kit.root / "current" / "bin" / "kitfleet-agent"
    out.mkdir()  # the technician's stick
    done = subprocess.run(
        [str(agent), "export", "--out", str(out), "--data-dir", str(kit.data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    merged = kitfleet(fleet.settings.home, "bundle", "receive", str(out), "--json")
    assert merged.returncode == 0, merged.stderr
    return ReceiptStore(fleet.inventory).imports()


def test_an_agent_upgrade_by_bundle_keeps_or_returns_to_the_old_agent_unless_the_new_one_serves(
    kit: Kit, fleet: Fleet, wheelhouse: Path, tmp_path: Path
) -> None:
    first = kit.health()
    old_venv, old_pid = kit.current(), kit.agent_pid()
    assert kit.serving_venv() == old_venv

    # Imports and says its version, but its `run` fails: only a real start shows it.
    broken = broken_copy(
        wheelhouse, tmp_path / "broken", "agent/server.py",
        "def run(settings):\n    raise SystemExit('deliberately broken build')",
    )  # fmt: skip
    _create(fleet, tmp_path / "broken.kfb", broken)
    refused = kit.import_bundle(tmp_path / "broken.kfb")
    assert refused.returncode != 0
    assert "keeps serving" in refused.stderr, refused.stderr
    assert "deliberately broken build" in refused.stderr, refused.stderr
    assert kit.current() == old_venv  # never switched
    assert kit.agent_pid() == old_pid  # never restarted
    assert [p.name for p in (kit.root / "venvs").iterdir()] == [old_venv]  # the new venv removed
    assert kit.health()["device_id"] == first["device_id"]
    failed = _journal(kit.data_dir)[-1]
    assert (failed["kind"], failed["outcome"]) == ("agent_upgrade", "failed")

    # Passes the trial run but fails where the kit really runs it: switched, restarted, it exits
    # before it serves, and the supervisor puts the previous agent back.
    only_on_trial = (
        "_trial_run = run\n"
        "def run(settings):\n"
        "    if '.upgrade-trial-' not in str(settings.data_dir):\n"
        "        raise SystemExit('deliberately broken outside the trial')\n"
        "    _trial_run(settings)"
    )
    late = broken_copy(wheelhouse, tmp_path / "late", "agent/server.py", only_on_trial)
    reverted_sha = _create(fleet, tmp_path / "late.kfb", late)["sha256"]
    switched = kit.import_bundle(tmp_path / "late.kfb")
    assert switched.returncode == 0, switched.stderr  # it passed every check before the switch
    back = kit.health(not_pid=old_pid)
    assert back["device_id"] == first["device_id"]
    assert kit.serving_venv() == old_venv
    assert kit.current() == old_venv
    assert "deliberately broken outside the trial" in (kit.root / "service.log").read_text()
    assert not (kit.root / "upgrade-pending.json").exists()
    old_pid = kit.agent_pid()

    made = _create(fleet, tmp_path / "good.kfb", wheelhouse)
    done = kit.import_bundle(tmp_path / "good.kfb")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)["applied"][0]
    assert (applied["type"], applied["outcome"]) == ("agent_upgrade", "done")
    assert applied["previous"] == old_venv
    assert applied["venv"] != old_venv
    assert "supervisor starts it again" in applied["restart"]
    assert kit.current() == applied["venv"]
    assert (kit.root / "venvs" / applied["venv"] / MARKER).read_text().strip() == made["sha256"]

    after = kit.health(not_pid=old_pid)  # the supervisor restarted the agent from `current`
    assert after["device_id"] == first["device_id"]
    assert kit.serving_venv() == applied["venv"]
    assert sorted(p.name for p in (kit.root / "venvs").iterdir()) == sorted([old_venv, applied["venv"]])
    upgraded = _journal(kit.data_dir)[-1]
    assert (upgraded["kind"], upgraded["outcome"]) == ("agent_upgrade", "done")
    assert json.loads(upgraded["detail"])["previous"] == old_venv
    said = {i.bundle_sha256: i for i in _received(kit, fleet, tmp_path / "receipt")}
    assert said[made["sha256"]].outcome == "applied"  # the laptop learns of both, by receipt
    assert applied["venv"] in said[made["sha256"]].message
    assert said[failed["bundle_sha256"]].outcome == "failed"
    assert "keeps serving" in said[failed["bundle_sha256"]].message
    assert said[reverted_sha].outcome == "failed"
    assert "was put back and serves" in said[reverted_sha].message

    again = kit.import_bundle(tmp_path / "good.kfb")  # a replay changes nothing
    assert again.returncode != 0
    assert kit.current() == applied["venv"]


def _fake_wheelhouse(folder: Path, target: str) -> Path:
    """A wheelhouse manifest over one small file, for the checks made before any install."""
    from app.provision.wheelhouse import write_manifest

    folder.mkdir()
    (folder / "kitfleet-0.1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    files = {target: ["kitfleet-0.1.0-py3-none-any.whl"]}
    write_manifest(folder, "kitfleet", "0.1.0", "kitfleet[agent]==0.1.0", "2.28", files)
    return folder


def test_an_upgrade_is_refused_where_it_cannot_apply(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    """A damaged or missing wheelhouse never becomes a bundle; an agent not installed in a kitfleet
    venv (here: run from the test's own environment) refuses the upgrade with nothing changed."""
    agent = start_agent("plain", mdns=False)
    adopt(agent)
    agent.stop()
    here = target_key(platform.machine(), sys.version_info[:2])
    damaged = _fake_wheelhouse(tmp_path / "damaged", here)
    (damaged / "kitfleet-0.1.0-py3-none-any.whl").write_bytes(b"changed on the stick")
    for house, says in ((damaged, "does not match its sha256"), (tmp_path / "nowhere", "not a wheelhouse")):
        done = kitfleet(fleet.settings.home, "bundle", "create", "--out", str(tmp_path / "x.kfb"),
                        "--kit", "plain", "--agent-upgrade", str(house))  # fmt: skip
        assert done.returncode != 0
        assert says in done.stderr, done.stderr
        assert not (tmp_path / "x.kfb").exists()

    _create_for(fleet, tmp_path / "up.kfb", "plain", _fake_wheelhouse(tmp_path / "house", here))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "import",
            str(tmp_path / "up.kfb"),
            "--data-dir",
            str(agent.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "not from a kitfleet install" in done.stderr, done.stderr
    failed = _journal(agent.data_dir)[-1]
    assert (failed["kind"], failed["outcome"]) == ("agent_upgrade", "failed")
