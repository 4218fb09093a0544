"""The offline wheelhouse's format and the pure steps of installing an agent from it.

Shared by SSH provisioning (app/provision: run over SSH on the kit) and by an agent upgrade
carried in a bundle (agent/bundles/upgrade.py: run by the kit itself). Both make a NEW venv per
version beside the running one, fill it with `pip --no-index --find-links` from the wheels, check
it, and only then point `<root>/current` at it. Standard library only, Python 3.10+.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARCHES",
    "FORMAT",
    "KEEP_VENVS",
    "MANIFEST",
    "PIP_ENV",
    "SELF_CHECK",
    "SUMS",
    "HouseManifest",
    "describe_target",
    "normalise_arch",
    "pip_install_command",
    "pip_wheel",
    "target_key",
    "venv_command",
    "venv_name",
    "version_of",
]

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
FORMAT = 1
ARCHES = ("x86_64", "aarch64")
KEEP_VENVS = 2  # current and the one before it, for going back
# Imported by the self-check: the agent's whole serving stack must load from the new venv.
SELF_CHECK = "import agent.cli, agent.server, agent.api.app, onnxruntime, numpy; print('ok')"
# The kit's pip must never look past the wheels, nor read a pip.conf that might.
PIP_ENV = {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1"}
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}
_WHEEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,200}\.whl$")
_VENV = re.compile(r"^kitfleet-(.+)-\d{14}$")


def normalise_arch(machine: str) -> str:
    machine = machine.strip().lower()
    return _ARCH_ALIASES.get(machine, machine)


def target_key(arch: str, python: tuple[int, int]) -> str:
    return f"{normalise_arch(arch)}-cp{python[0]}{python[1]}"


def describe_target(key: str) -> str:
    arch, _, cp = key.partition("-cp")
    return f"{arch} CPython {cp[0]}.{cp[1:]}" if cp else key


@dataclass(frozen=True)
class HouseManifest:
    """manifest.json of a wheelhouse, checked: every name a plain wheel file name (or pip's
    wheel), every target's files listed with a sha256 and size."""

    project: str
    version: str
    requirement: str
    glibc: str
    targets: dict[str, list[str]]
    files: dict[str, dict[str, Any]]

    @classmethod
    def parse(cls, data: Any) -> HouseManifest:
        """Raises ValueError saying what is wrong; names never become paths unchecked."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a kitfleet wheelhouse manifest (format {FORMAT})")
        strings = [data.get(k) for k in ("project", "version", "requirement", "glibc")]
        if not all(isinstance(s, str) and 0 < len(s) <= 200 for s in strings):
            raise ValueError("the manifest's project, version, requirement or glibc is missing")
        targets, files = data.get("targets"), data.get("files")
        if not isinstance(targets, dict) or not isinstance(files, dict) or len(files) > 2000:
            raise ValueError("the manifest's targets or files are malformed")
        for name, info in files.items():
            if not isinstance(name, str) or not _WHEEL.match(name) or ".." in name:
                raise ValueError(f"{str(name)[:80]!r} is not a wheel file name")
            if not isinstance(info, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(info.get("sha256"))):
                raise ValueError(f"{name} has no sha256")
            if not isinstance(info.get("size"), int) or info["size"] < 0:
                raise ValueError(f"{name} has no size")
        for key, names in targets.items():
            if not isinstance(names, list) or not all(n in files for n in names):
                raise ValueError(f"target {str(key)[:40]} lists files the manifest does not")
        return cls(strings[0], strings[1], strings[2], strings[3], targets, files)  # type: ignore[arg-type]

    def wheels_for(self, key: str) -> list[str] | None:
        names = self.targets.get(key)
        return list(names) if names is not None else None

    def describe_targets(self) -> str:
        return ", ".join(describe_target(k) for k in sorted(self.targets)) or "nothing"


def pip_wheel(names: list[str]) -> str | None:
    """pip itself, run from its wheel, so the kit needs neither pip nor ensurepip."""
    return next((n for n in names if n.startswith("pip-")), None)


def venv_name(version: str, stamp: str) -> str:
    """`stamp`: time.strftime('%Y%m%d%H%M%S'), so names sort by age and say their version."""
    return f"kitfleet-{version}-{stamp}"


def version_of(venv_basename: str) -> str:
    match = _VENV.match(venv_basename)
    return match[1] if match else venv_basename


def venv_command(python: str, venv: str, without_pip: bool) -> list[str]:
    return [python, "-m", "venv", *(["--without-pip"] if without_pip else []), venv]


def pip_install_command(
    venv: str, pip_from_wheel: str | None, find_links: str, requirement: str
) -> list[str]:
    """Offline: only the wheels in `find_links`, no cache, no index, no questions."""
    pip = [f"{venv}/bin/python", f"{pip_from_wheel}/pip"] if pip_from_wheel else [f"{venv}/bin/pip"]
    return [
        *pip,
        "install",
        "--no-index",
        "--find-links",
        find_links,
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--no-warn-script-location",
        requirement,
    ]
