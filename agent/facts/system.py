"""System facts: operating system, kernel, Python, hostname, boot time and the kit's identity."""

from __future__ import annotations

import platform
import socket
from pathlib import Path

import psutil

from agent.wire import KitIdentity, SystemFacts

from ._common import read_text

_DMI = Path("/sys/class/dmi/id")
_DEVICE_TREE = Path("/proc/device-tree")
# Firmware fills unset DMI fields with these; they name nothing.
_DMI_PLACEHOLDERS = frozenset(
    {
        "to be filled by o.e.m.",
        "default string",
        "system product name",
        "system manufacturer",
        "not specified",
        "none",
        "0123456789",
    }
)


def collect() -> SystemFacts:
    """Return OS, kernel, Python, hostname, boot time and kit vendor/model/serial/board."""
    return SystemFacts(
        available=True,
        os=_os_name(),
        kernel=platform.release(),
        python=platform.python_version(),
        hostname=socket.gethostname(),
        boot_time=psutil.boot_time(),
        kit=kit_identity(),
    )


def kit_identity() -> KitIdentity:
    """Vendor, model, serial and board from DMI (x86), else from the device tree (ARM boards).

    The DMI serial is readable by root only; it is None when the agent runs unprivileged.
    """
    dmi = {
        key: _dmi(name)
        for key, name in (
            ("vendor", "sys_vendor"),
            ("model", "product_name"),
            ("serial", "product_serial"),
            ("board", "board_name"),
        )
    }
    if dmi["model"] is None:
        dmi["model"] = read_text(_DEVICE_TREE / "model")
        dmi["serial"] = dmi["serial"] or read_text(_DEVICE_TREE / "serial-number")
    return KitIdentity(**dmi)


def _dmi(name: str) -> str | None:
    value = read_text(_DMI / name)
    return None if value is None or value.lower() in _DMI_PLACEHOLDERS else value


def _os_name() -> str:
    """PRETTY_NAME from os-release ("Ubuntu 22.04.4 LTS"), else what platform says."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        for line in (read_text(path) or "").splitlines():
            key, _, value = line.partition("=")
            name = value.strip().strip("\"'")
            if key == "PRETTY_NAME" and name:
                return name
    return platform.platform()
