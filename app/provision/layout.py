"""Where things live on a kit. The data dir (identity, models, jobs) outlives every upgrade."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

from app.provision.errors import ProvisionError
from app.provision.kitinfo import KitInfo
from app.provision.target import KitOptions

SYSTEM_ROOT = "/opt/kitfleet-agent"
SYSTEM_DATA = "/var/lib/kitfleet-agent"  # the agent's own default --data-dir
SERVICE_USER = "kitfleet-agent"
UNIT_NAME = "kitfleet-agent.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"


@dataclass(frozen=True)
class Layout:
    root: str  # venvs/, current -> venvs/<one>, wheelhouse/, supervisor files
    data_dir: str
    service: Literal["systemd", "user"]
    run_as: str | None  # the systemd service's user; None: the SSH user itself

    @property
    def wheelhouse(self) -> str:
        return posixpath.join(self.root, "wheelhouse")

    @property
    def venvs(self) -> str:
        return posixpath.join(self.root, "venvs")

    @property
    def current(self) -> str:
        return posixpath.join(self.root, "current")

    @property
    def agent(self) -> str:
        return posixpath.join(self.current, "bin", "kitfleet-agent")

    @property
    def supervisor(self) -> str:
        return posixpath.join(self.root, "supervise.py")

    @property
    def pid_file(self) -> str:
        return posixpath.join(self.root, "run", "supervisor.pid")

    @property
    def service_log(self) -> str:
        return posixpath.join(self.root, "log", "service.log")


def choose_layout(info: KitInfo, options: KitOptions) -> Layout:
    """systemd as root where systemd runs; otherwise a user-level supervisor under the user's home."""
    wants = options.service
    systemd_ok = info.systemd and info.uid == 0
    if wants == "systemd" and not systemd_ok:
        why = "systemd is not running there" if not info.systemd else "the SSH user is not root"
        raise ProvisionError(f"cannot install a systemd unit: {why}; log in as root or use --service user")
    use_systemd = wants == "systemd" or (wants == "auto" and systemd_ok)
    if options.kit_root:
        root = options.kit_root.rstrip("/") or "/"
        data = posixpath.join(root, "data")
    elif use_systemd:
        root, data = SYSTEM_ROOT, SYSTEM_DATA
    else:
        root = posixpath.join(info.home, ".local", "share", "kitfleet-agent")
        data = posixpath.join(root, "data")
    if not posixpath.isabs(root):
        raise ProvisionError(f"--kit-root {root!r} must be an absolute path on the kit")
    return Layout(root, data, "systemd" if use_systemd else "user", SERVICE_USER if use_systemd else None)
