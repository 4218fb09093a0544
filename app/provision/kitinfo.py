"""What the kit is: architecture, OS, C library and Python, read over SSH; and whether we can serve it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from app.provision.errors import ProvisionError, Unsupported
from app.provision.session import SshSession
from app.provision.wheelhouse import ARCHES, normalise_arch

MIN_PYTHON = (3, 10)

# Runs on the kit's own interpreter, whatever its age: no f-strings, standard library only.
_PROBE = r"""
import json, os, platform, shutil, sys
pretty = ""
try:
    for line in open("/etc/os-release"):
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
except OSError:
    pass
home = os.path.expanduser("~")
print(json.dumps({
    "machine": platform.machine(), "system": platform.system(), "os": pretty,
    "python": list(sys.version_info[:3]), "implementation": sys.implementation.name,
    "executable": sys.executable, "libc": list(platform.libc_ver()),
    "uid": os.getuid(), "home": home, "systemd": os.path.isdir("/run/systemd/system"),
    "free_bytes": shutil.disk_usage(home).free,
}))
"""


@dataclass(frozen=True)
class KitInfo:
    arch: str
    system: str
    os: str
    python: tuple[int, int, int]
    implementation: str
    executable: str
    libc: tuple[str, str]
    uid: int
    home: str
    systemd: bool
    free_bytes: int

    @property
    def python_short(self) -> tuple[int, int]:
        return self.python[0], self.python[1]

    def describe(self) -> str:
        version = ".".join(map(str, self.python))
        return f"{self.arch}, {self.os or self.system}, Python {version}" + (
            ", systemd" if self.systemd else ", no systemd"
        )


def detect(session: SshSession, python: str) -> KitInfo:
    result = session.run(f"{shlex.quote(python)} -", stdin=_PROBE.encode(), timeout=60)
    if result.status == 127 or "not found" in result.stderr:
        raise Unsupported(
            f"{session.target.host} has no `{python}`; install Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer there (e.g. apt install "
            "python3), or name another interpreter with --kit-python"
        )
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ProvisionError(f"could not read the kit's platform with `{python}`: {result.tail()}") from None
    return KitInfo(
        normalise_arch(data["machine"]),
        data["system"],
        data["os"],
        tuple(data["python"]),
        data["implementation"],
        data["executable"],
        tuple(data["libc"]),
        int(data["uid"]),
        data["home"],
        bool(data["systemd"]),
        int(data["free_bytes"]),
    )


def check_supported(info: KitInfo, glibc: str, need_bytes: int) -> None:
    """Refuse, saying why, a kit the agent cannot run on."""
    if info.system != "Linux":
        raise Unsupported(f"the kit runs {info.system}; the agent runs on Linux only")
    if info.arch not in ARCHES:
        raise Unsupported(f"the kit is {info.arch}; the agent is built for {' and '.join(ARCHES)} only")
    if info.implementation != "cpython":
        raise Unsupported(f"the kit's python is {info.implementation}; the agent needs CPython")
    if info.python_short < MIN_PYTHON:
        have = ".".join(map(str, info.python))
        raise Unsupported(
            f"the kit's {info.executable} is Python {have}; the agent needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer: install a newer python3 "
            "and name it with --kit-python"
        )
    libc, version = info.libc
    if libc != "glibc":
        raise Unsupported(
            f"the kit's C library is {libc or 'unknown (musl?)'}; the wheelhouse "
            "holds manylinux (glibc) wheels only"
        )
    if _version(version) < _version(glibc):
        raise Unsupported(
            f"the kit has glibc {version}; the wheelhouse needs glibc {glibc} or "
            "newer (rebuild it with a lower --glibc, if its packages allow)"
        )
    if info.free_bytes < need_bytes:
        raise Unsupported(
            f"the kit has {info.free_bytes >> 20} MiB free in {info.home}; "
            f"installing needs about {need_bytes >> 20} MiB"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())
