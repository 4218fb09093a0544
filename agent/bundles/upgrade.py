"""An agent upgrade carried in a bundle: the kit installs the new agent itself, with no network.

The install is provisioning's (agent/toolkit/wheelhouse.py holds the shared steps): a NEW venv
beside the running one under `<root>/venvs`, filled by `pip --no-index --find-links` from the
bundle's wheels for this kit's target only (each re-hashed as it is copied out, against the
signed bundle manifest), then checked: the serving stack imports, `--version` says the version,
and the new agent really starts and answers /v1/health with this kit's device ID (a trial run on
a loopback port with a scratch copy of the identity, agent/bundles/trial.py). Only then does
`<root>/current` point at it. A failure at any step removes the new venv and leaves `current`
and the running agent as they were; the journal records the failure and the receipt reports it.

After the switch the running agent restarts into the new one when a service manager watches it
(agent/bundles/restart.py); the previous venv is kept, and the user-level supervisor goes back to
it if the new agent exits before it serves (agent/bundles/upgrade_state.py).

Under the hardened systemd unit the agent cannot write `<root>`: it stages the checked wheels
and a request in its data dir instead (agent/bundles/staged.py), and root's oneshot
`kitfleet-agent apply-upgrade` (agent/bundles/apply_staged.py) does the install, trial, switch
and restart with these same steps.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.bundles import restart, staged, upgrade_state
from agent.bundles.install import Install, running_install
from agent.bundles.trial import TrialFailed, trial_run
from agent.errors import Invalid
from agent.toolkit.bundles import VerifiedBundle
from agent.toolkit.durable import fsync_path
from agent.toolkit.wheelhouse import (
    KEEP_VENVS,
    PIP_ENV,
    SELF_CHECK,
    HouseManifest,
    describe_target,
    pip_install_command,
    pip_wheel,
    target_key,
    venv_command,
    venv_name,
    version_of,
)

__all__ = ["MARKER", "Install", "apply_upgrade", "check_upgrade", "install_venv", "running_install", "switch"]

MEMBER_PREFIX = "files/agent/"
DEB_VENV = "deb"  # the .deb's own venv (packaging/deb/build.py): dpkg owns it, never pruned
MARKER = "kitfleet-bundle"  # in a venv a bundle made: the bundle's sha256 (its re-import is a no-op)
PIP_TIMEOUT_S = 1800.0
Outcome = tuple[str, dict[str, Any]]


class StepFailed(Exception):
    """One install step failed; the message says which and what it printed."""


def check_upgrade(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    """Before anything is applied: the wheelhouse manifest is sound and every wheel it lists is
    a member of the bundle with the same sha256 and size (the signed manifest's)."""
    house = HouseManifest.parse(action["wheelhouse"])
    for name, info in house.files.items():
        member = bundle.member(MEMBER_PREFIX + name)
        if (member.sha256, member.size) != (info["sha256"], info["size"]):
            raise ValueError(f"{name} does not match the wheelhouse manifest's sha256 and size")


def apply_upgrade(ctx: Any, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    house = HouseManifest.parse(action["wheelhouse"])
    here = running_install()
    target = f"kitfleet-agent {house.version}"
    if _made_by(here.venv) == bundle.sha256:  # switched before a crash cut the journal short
        return target, {"venv": here.venv.name, "already": True}
    key = target_key(platform.machine(), (sys.version_info[0], sys.version_info[1]))
    names = house.wheels_for(key)
    if not names:
        raise Invalid(
            "agent_upgrade_no_wheels",
            f"the bundle's wheelhouse has no wheels for this kit ({describe_target(key)}); it has "
            f"{house.describe_targets()}",
            "build the wheelhouse for this kit's target too, then make the bundle again",
        )
    if not (os.access(here.root, os.W_OK) and os.access(here.venvs, os.W_OK)):
        return target, _stage(ctx, bundle, house, names, here)
    new = here.venvs / venv_name(house.version, time.strftime("%Y%m%d%H%M%S"))
    _install_checked(ctx, bundle, house, names, here, new)
    upgrade_state.pending(here.root, bundle.sha256, new.name, here.venv.name, house.version)
    switch(here, new)
    prune(here, keep={new.name, here.venv.name})
    how = restart.after_switch(ctx.running)
    detail = {"venv": new.name, "previous": here.venv.name, "wheels": len(names), "restart": how}
    return target, {**detail, "previous_version": version_of(here.venv.name)}


def _stage(
    ctx: Any, bundle: VerifiedBundle, house: HouseManifest, names: list[str], here: Install
) -> dict[str, Any]:
    """Under systemd the agent may write only its data dir: leave the checked wheels and a request
    there for the root oneshot (kitfleet-agent-upgrade.path -> `kitfleet-agent apply-upgrade`)."""
    folder = staged.stage_dir(Path(ctx.settings.data_dir))
    wheels, fresh = folder / staged.WHEELS, folder / (staged.WHEELS + ".new")
    (folder / staged.REQUEST).unlink(missing_ok=True)  # an older request never meets these wheels
    (folder / staged.OUTCOME).unlink(missing_ok=True)
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    bundle.extract_members([(MEMBER_PREFIX + n, fresh / n) for n in names], sync=True)
    shutil.rmtree(wheels, ignore_errors=True)
    os.replace(fresh, wheels)
    files = {n: (str(house.files[n]["sha256"]), int(house.files[n]["size"])) for n in names}
    staged.write_request(
        Path(ctx.settings.data_dir), staged.Request(bundle.sha256, house.version, house.requirement, files)
    )
    return {
        "staged": True,
        "wheels": len(names),
        "previous": here.venv.name,
        "applies": "kitfleet-agent-upgrade.service installs it as root (or run `kitfleet-agent "
        "apply-upgrade` as root); the outcome is journalled when the agent starts again",
    }


def _install_checked(
    ctx: Any, bundle: VerifiedBundle, house: HouseManifest, names: list[str], here: Install, new: Path
) -> None:
    """Fill and check the new venv; on any failure remove it and refuse, `current` untouched."""
    wheels = Path(tempfile.mkdtemp(prefix=".bundle-wheels-", dir=here.root))
    try:
        bundle.extract_members([(MEMBER_PREFIX + n, wheels / n) for n in names], sync=False)
        install_venv(house, names, wheels, new)
        (new / MARKER).write_text(bundle.sha256 + "\n")
        trial_run(new, ctx.settings, house.version)
    except (StepFailed, TrialFailed, OSError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise Invalid(
            "agent_upgrade_failed",
            f"kitfleet-agent {house.version} was not installed, and the running agent "
            f"({version_of(here.venv.name)}) keeps serving: {exc}"[:1500],
            "fix the wheelhouse (build it again from a working checkout), then make the bundle again",
        ) from None
    finally:
        shutil.rmtree(wheels, ignore_errors=True)


def install_venv(
    house: HouseManifest, names: list[str], wheels: Path, venv: Path, python: str | None = None
) -> None:
    """A new venv from `wheels` (a folder of the wheelhouse's files), offline, then self-checked;
    on this agent's base interpreter unless `python` names another."""
    python = python or str(getattr(sys, "_base_executable", "") or sys.executable)
    pip = pip_wheel(names)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _step(venv_command(python, str(venv), pip is not None), "creating the venv", 300.0)
    command = pip_install_command(
        str(venv), str(wheels / pip) if pip else None, str(wheels), house.requirement
    )
    _step(command, f"pip install {house.requirement} (offline, from the bundle's wheels)", PIP_TIMEOUT_S)
    _step([str(venv / "bin" / "python"), "-c", SELF_CHECK], "the new agent's import check", 300.0)
    said = _step([str(venv / "bin" / "kitfleet-agent"), "--version"], "the new agent's version check", 120.0)
    if not said.strip().endswith(house.version):
        raise StepFailed(f"the new venv says {said.strip()[:80]!r}, expected {house.version}")


def _step(command: list[str], what: str, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env={**env, **PIP_ENV}, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        raise StepFailed(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _made_by(venv: Path) -> str:
    try:
        return (venv / MARKER).read_text().strip()
    except OSError:
        return ""


def switch(here: Install, new: Path) -> None:
    """Point `current` at the new venv atomically (a new link renamed over the old one)."""
    link = here.root / "current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(new, here.root))
    os.replace(link, here.current)
    fsync_path(here.root)


def prune(here: Install, keep: set[str]) -> None:
    """Keep the new venv and the previous one (KEEP_VENVS); older ones and reverted ones go."""
    assert len(keep) <= KEEP_VENVS
    for old in here.venvs.iterdir():
        if old.name not in keep and old.name != DEB_VENV and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
