"""The new agent's health check before the switch: it must really start and answer /v1/health.

The new venv's `kitfleet-agent run` is started on a loopback port the kernel picks, on a scratch
data dir holding a copy of this kit's identity (so it answers with this kit's device ID) and no
mDNS, and is asked /v1/health as provisioning asks it: the device ID and version must be this
kit's and the bundle's. The running agent's own data dir is never opened by the new code before
the switch, and the trial agent is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.toolkit.readiness import read_health
from agent.wire import device_id_from_der

__all__ = ["TRIAL_TIMEOUT_S", "TrialFailed", "trial_run"]

TRIAL_TIMEOUT_S = 120.0
_IDENTITY = ("identity.crt", "identity.key")
_PORT_FILE = "agent.port"


class TrialFailed(Exception):
    """The new agent did not come up healthy; the message says how far it got."""


def trial_run(
    venv: Path, settings: Any, version: str, timeout: float = TRIAL_TIMEOUT_S, user: int | None = None
) -> None:
    """`user`: run the trial agent as this uid (and its primary group): root's apply-upgrade
    (agent/bundles/apply_staged.py) tries the new agent as the service user, as it will run."""
    data_dir = Path(settings.data_dir)
    scratch = Path(tempfile.mkdtemp(prefix=".upgrade-trial-", dir=data_dir))
    try:
        for name in _IDENTITY:
            source = data_dir / name
            if user is not None and (source.is_symlink() or not source.is_file()):
                raise TrialFailed(f"{data_dir / name} is not a plain file")  # root never follows one
            shutil.copy2(data_dir / name, scratch / name)
        config = {"host": "127.0.0.1", "port": 0, "mdns": False, "name": f"{settings.name} (trial)"}
        (scratch / "agent.json").write_text(json.dumps(config))
        if user is not None:
            _hand_to(scratch, user)
        device_id = _device_id(data_dir)
        log = scratch / "trial.log"
        with log.open("wb") as out:
            agent = subprocess.Popen(
                [str(venv / "bin" / "kitfleet-agent"), "run", "--data-dir", str(scratch)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_user(user),
            )
        try:
            _wait_healthy(agent, scratch, device_id, version, timeout, log)
        finally:
            _stop(agent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _hand_to(scratch: Path, uid: int) -> None:
    gid = pwd.getpwuid(uid).pw_gid
    for path in (scratch, *scratch.iterdir()):
        os.chown(path, uid, gid)


def _as_user(uid: int | None) -> dict[str, Any]:
    if uid is None:
        return {}
    entry = pwd.getpwuid(uid)
    return {"user": uid, "group": entry.pw_gid, "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid)}


def _wait_healthy(
    agent: subprocess.Popen[bytes], scratch: Path, device_id: str, version: str, timeout: float, log: Path
) -> None:
    deadline, last = time.monotonic() + timeout, "no answer yet"
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise TrialFailed(f"the new agent exited with {agent.returncode} as it started:\n{_tail(log)}")
        port = _port(scratch)
        if port:
            try:
                health = read_health("127.0.0.1", port)
            except (OSError, ValueError) as exc:
                last = str(exc)
            else:
                if health.get("device_id") != device_id:
                    raise TrialFailed(f"the new agent answers as device {str(health.get('device_id'))[:16]}")
                if health.get("version") != version:
                    raise TrialFailed(f"the new agent says version {str(health.get('version'))[:40]}")
                return
        time.sleep(0.25)
    raise TrialFailed(f"the new agent gave no healthy answer within {timeout:g} s ({last}):\n{_tail(log)}")


def _device_id(data_dir: Path) -> str:
    return device_id_from_der(ssl.PEM_cert_to_DER_cert((data_dir / _IDENTITY[0]).read_text()))


def _port(scratch: Path) -> int | None:
    try:
        return int((scratch / _PORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _stop(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(10)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").strip().splitlines()[-12:])
    except OSError:
        return "(no log)"
