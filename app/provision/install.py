"""A new virtual environment per version, checked before the `current` symlink ever points at it.

The running agent uses `<root>/current`; an install that fails at any step leaves it untouched.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.toolkit.wheelhouse import KEEP_VENVS, SELF_CHECK, pip_install_command, venv_command, venv_name
from app.provision.errors import InstallFailed, ProvisionError
from app.provision.layout import Layout
from app.provision.service import agent_command
from app.provision.session import SshSession
from app.provision.wheelhouse import WheelFile, Wheelhouse

__all__ = ["KEEP_VENVS", "Installed", "Installer"]


@dataclass(frozen=True)
class Installed:
    venv: str
    version: str
    device_id: str


def _q(*parts: str) -> str:
    return " ".join(shlex.quote(p) for p in parts)


class Installer:
    def __init__(self, session: SshSession, layout: Layout, python: str) -> None:
        self.session, self.layout, self.python = session, layout, python

    def current_venv(self) -> str | None:
        """The venv the running agent uses, or None on a fresh kit."""
        result = self.session.run(_q("readlink", self.layout.current))
        target = result.stdout.strip()
        return posixpath.join(self.layout.root, target) if result.status == 0 and target else None

    def create(self, house: Wheelhouse, wheels: Sequence[WheelFile]) -> Installed:
        """Make and fill a new venv, then self-check it; on failure remove it and raise."""
        lay = self.layout
        venv = posixpath.join(lay.venvs, venv_name(house.version, time.strftime("%Y%m%d%H%M%S")))
        try:
            self._fill(venv, house, wheels)
            device_id = self._self_check(venv, house.version)
        except ProvisionError as exc:
            self.session.run(_q("rm", "-rf", venv))
            raise InstallFailed(
                f"installing kitfleet-agent {house.version} failed; the running "
                f"agent (if any) was left as it was. {exc}"
            ) from exc
        return Installed(venv, house.version, device_id)

    def _fill(self, venv: str, house: Wheelhouse, wheels: Sequence[WheelFile]) -> None:
        lay = self.layout
        pip_wheel = house.pip_wheel(list(wheels))
        # pip runs from its wheel: the kit needs neither pip nor the ensurepip module.
        make = _q(*venv_command(self.python, venv, pip_wheel is not None))
        self.session.check(f"mkdir -p {shlex.quote(lay.venvs)} && {make}", "creating the venv")
        from_wheel = posixpath.join(lay.wheelhouse, pip_wheel.name) if pip_wheel else None
        self.session.check(
            _q(*pip_install_command(venv, from_wheel, lay.wheelhouse, house.requirement)),
            f"pip install {house.requirement} (offline, from the copied wheelhouse)",
            timeout=1800,
        )

    def _self_check(self, venv: str, version: str) -> str:
        lay = self.layout
        python = posixpath.join(venv, "bin", "python")
        self.session.check(_q(python, "-c", SELF_CHECK), "the new agent's import check")
        said = self.session.check(
            _q(posixpath.join(venv, "bin", "kitfleet-agent"), "--version"), "the new agent's version check"
        ).strip()
        if not said.endswith(version):
            raise ProvisionError(f"the new venv says {said!r}, expected {version}")
        agent = posixpath.join(venv, "bin", "kitfleet-agent")
        self.session.check(_mkdir_data(lay), "making the data dir")
        out = self.session.check(
            agent_command(lay, agent, "identity", "--json", "--data-dir", lay.data_dir),
            "reading the kit's identity",
        )
        return str(json.loads(out)["device_id"])

    def switch(self, venv: str) -> None:
        """Point `current` at a venv atomically (rename over the old link)."""
        lay = self.layout
        relative = posixpath.relpath(venv, lay.root)
        temporary = lay.current + ".new"
        self.session.check(
            f"ln -sfn {_q(relative, temporary)} && mv -Tf {_q(temporary, lay.current)}",
            "switching to the new venv",
        )

    def prune(self, keep: Sequence[str]) -> None:
        """Remove venvs beyond the newest KEEP_VENVS, never one in `keep`."""
        listing = self.session.run(f"ls -1t {shlex.quote(self.layout.venvs)}").stdout.split()
        paths = [posixpath.join(self.layout.venvs, name) for name in listing]
        old = [p for p in paths[KEEP_VENVS:] if p not in keep]
        if old:
            self.session.run(_q("rm", "-rf", *old))

    def forget(self, venv: str) -> None:
        """Remove a venv that failed; drop `current` too if it still points there."""
        lay = self.layout
        if self.current_venv() == venv:
            self.session.run(_q("rm", "-f", lay.current))
        self.session.run(_q("rm", "-rf", venv))

    def prune_wheels(self, keep: Sequence[str]) -> None:
        """Drop wheels of other versions from the kit's wheelhouse, once the install is good."""
        sftp = self.session.sftp()
        wanted = set(keep)
        for name in sftp.listdir(self.layout.wheelhouse):
            if name not in wanted:
                sftp.remove(posixpath.join(self.layout.wheelhouse, name))

    def write_config(self, settings: dict[str, object]) -> None:
        """Merge settings into the agent's agent.json, keeping any the technician set by hand."""
        path = posixpath.join(self.layout.data_dir, "agent.json")
        sftp = self.session.sftp()
        try:
            with sftp.open(path, "r") as handle:
                current = json.loads(handle.read().decode() or "{}")
        except FileNotFoundError:
            current = {}
        except ValueError as exc:
            raise ProvisionError(f"{path} on the kit is not valid JSON ({exc}); fix or remove it") from exc
        merged = {**current, **settings}
        with sftp.open(path + ".tmp", "w") as handle:
            handle.write((json.dumps(merged, indent=2) + "\n").encode())
        sftp.posix_rename(path + ".tmp", path)
        if self.layout.run_as:
            self.session.check(
                _q("chown", f"{self.layout.run_as}:{self.layout.run_as}", path),
                "handing agent.json to the service user",
            )


def _mkdir_data(layout: Layout) -> str:
    """Owner-only, even where an earlier install left it open: it holds the pairing key."""
    data = shlex.quote(layout.data_dir)
    make = f"mkdir -p {data} && chmod 0700 {data}"
    if layout.run_as:
        make += f" && chown {layout.run_as}:{layout.run_as} {data}"
    return make
