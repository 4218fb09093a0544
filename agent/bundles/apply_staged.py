"""`kitfleet-agent apply-upgrade`: root installs an agent upgrade the hardened agent staged.

Run by `kitfleet-agent-upgrade.service` (a root oneshot started by `kitfleet-agent-upgrade.path`
when `<data>/upgrade/request.json` appears; app/provision/service.py), or by hand as root. The
request and wheels are checked again and copied where only root writes (agent/bundles/staged.py),
then the steps are the bundle upgrade's own (agent/bundles/upgrade.py, agent/toolkit/wheelhouse.py):
a new venv beside the current one under `<root>/venvs`, the import and version checks, the trial
run as the service user (agent/bundles/trial.py), an atomic switch of `<root>/current`, a restart
of the service, and a wait for /v1/health to answer with the new version. If it does not, `current`
goes back to the previous venv and the service is restarted again. Each outcome is left in
`<data>/upgrade/outcome.json`, owned by the service user, for the agent to journal.

The restart is `systemctl restart kitfleet-agent.service` unless `--restart-command` says otherwise
(a host without systemd, such as the tests' or one run by another service manager).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent.bundles import staged
from agent.bundles.trial import TrialFailed, trial_run
from agent.bundles.upgrade import MARKER, Install, StepFailed, install_venv, prune, switch
from agent.toolkit.readiness import read_health
from agent.toolkit.wheelhouse import HouseManifest, venv_name, version_of

__all__ = ["DEFAULT_RESTART", "ApplyFailed", "apply_staged"]

DEFAULT_RESTART = "systemctl restart kitfleet-agent.service"
HEALTH_TIMEOUT_S = 120.0


class ApplyFailed(Exception):
    """Nothing was switched (or it was switched back); the message says why."""


def apply_staged(
    data_dir: Path,
    root: Path,
    restart: list[str],
    health_timeout: float = HEALTH_TIMEOUT_S,
    user: int | None = None,
) -> dict[str, Any]:
    """The outcome, also written for the agent; {"outcome": "nothing"} when nothing is staged."""
    os.umask(0o022)  # the venv is read by the service user; the CLI's private umask is for data
    uid = os.stat(data_dir).st_uid if user is None else user
    try:
        request = staged.read_request(data_dir)
    except staged.RequestInvalid as exc:
        refused = f"the staged upgrade was refused: {exc}"
        return _finish(data_dir, uid, {"outcome": "failed", "message": refused})
    if request is None:
        return {"outcome": "nothing", "message": f"no upgrade is staged in {staged.stage_dir(data_dir)}"}
    try:
        here = _install(root)
    except ApplyFailed as exc:
        return _finish(data_dir, uid, {"bundle": request.bundle, "outcome": "failed", "message": str(exc)})
    base = {"bundle": request.bundle, "version": request.version, "previous": here.venv.name}
    if _made_by(here.venv) == request.bundle:
        return _finish(data_dir, uid, {**base, "outcome": "applied", "new": here.venv.name, "already": True})
    new = here.venvs / venv_name(request.version, time.strftime("%Y%m%d%H%M%S"))
    try:
        _install_checked(data_dir, request, here, new, uid)
    except (staged.RequestInvalid, StepFailed, TrialFailed, OSError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        message = (
            f"kitfleet-agent {request.version} was not installed, and the running agent "
            f"({version_of(here.venv.name)}) keeps serving: {exc}"
        )
        return _finish(data_dir, uid, {**base, "outcome": "failed", "message": message[:1500]})
    # The new agent reads this at its start: `switched` to it, it journals the upgrade as done.
    _finish(data_dir, uid, {**base, "outcome": "switched", "new": new.name})
    stamp = _port_stamp(data_dir)
    switch(here, new)
    said = _restart(restart)
    health = _wait_version(data_dir, request.version, health_timeout, stamp)
    if health is None:
        switch(here, here.venv)
        shutil.rmtree(new, ignore_errors=True)
        message = (
            f"kitfleet-agent {request.version} was installed in {new.name} but did not answer "
            f"/v1/health with its version within {health_timeout:g} s after the restart ({said}); "
            f"the previous agent ({here.venv.name}) was put back"
        )
        reverted = {**base, "outcome": "reverted", "new": new.name, "message": message}
        _finish(data_dir, uid, reverted)  # before the restart: the previous agent journals it
        stamp = _port_stamp(data_dir)
        _restart(restart)
        if _wait_version(data_dir, None, health_timeout, stamp) is None:
            reverted["message"] = message + ", and it has not answered yet either"
        return reverted
    prune(Install(root, new), keep={new.name, here.venv.name})
    return _finish(data_dir, uid, {**base, "outcome": "applied", "new": new.name})


def _install(root: Path) -> Install:
    venv = Path(os.path.realpath(root / "current"))
    if venv.parent != Path(os.path.realpath(root / "venvs")) or not venv.is_dir():
        raise ApplyFailed(f"{root}/current does not point at a venv under {root}/venvs")
    return Install(root, venv)


def _install_checked(data_dir: Path, request: staged.Request, here: Install, new: Path, uid: int) -> None:
    wheels = Path(tempfile.mkdtemp(prefix=".staged-wheels-", dir=here.root))  # root's, 0700
    try:
        staged.copy_checked(data_dir, request, wheels)
        names = list(request.wheels)
        house = HouseManifest(
            "kitfleet",
            request.version,
            request.requirement,
            "",
            {"staged": names},
            {n: {"sha256": s, "size": z} for n, (s, z) in request.wheels.items()},
        )
        install_venv(house, names, wheels, new)
        (new / MARKER).write_text(request.bundle + "\n")
        settings = SimpleNamespace(data_dir=data_dir, name="kit")
        trial_run(new, settings, request.version, user=uid)
    finally:
        shutil.rmtree(wheels, ignore_errors=True)


def _made_by(venv: Path) -> str:
    try:
        return (venv / MARKER).read_text().strip()
    except OSError:
        return ""


def _restart(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{shlex.join(command)} failed: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-300:]
        return f"{shlex.join(command)} exited {done.returncode}: {said}"
    return f"{shlex.join(command)} done"


def _port_stamp(data_dir: Path) -> tuple[int, int] | None:
    """Which agent.port file is there: each start of the agent writes a new one (a rename), so
    an answer counts only once the file differs from the one before the restart."""
    try:
        info = os.stat(data_dir / "agent.port")
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _wait_version(
    data_dir: Path, version: str | None, timeout: float, old: tuple[int, int] | None
) -> dict[str, Any] | None:
    """/v1/health of the agent started after the restart, once it answers with `version`
    (None: any version, the previous agent's being put back)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _port_stamp(data_dir) == old:
                raise ValueError("the agent has not started again yet")
            port = int((data_dir / "agent.port").read_text())
            health = read_health("127.0.0.1", port)
        except (OSError, ValueError):
            pass
        else:
            if version is None or health.get("version") == version:
                return health
        time.sleep(0.5)
    return None


def _finish(data_dir: Path, uid: int, outcome: dict[str, Any]) -> dict[str, Any]:
    """Record the outcome for the agent; the request and the staged wheels are done with."""
    staged.write_outcome(data_dir, {**outcome, "at": time.time()}, uid, os.stat(data_dir).st_gid)
    return outcome
