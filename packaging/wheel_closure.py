"""Prove a wheelhouse complete: every requirement of every wheel present, for every target.

    python packaging/wheel_closure.py dist/wheelhouse        # exit 1 and a list of what is missing

For each target in manifest.json (architecture + CPython X.Y), starting from the manifest's
requirement (`kitfleet[agent]==V`) and pip: read each wheel's METADATA `Requires-Dist`, evaluate
the markers as that target's interpreter would (python_version, platform_machine, sys_platform,
extras asked for), and find a wheel of the target whose version matches and whose tags the
target's interpreter accepts. Only the wheels' metadata is read; nothing is installed or fetched.
"""

from __future__ import annotations

import email.parser
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

MANIFEST = "manifest.json"
ALWAYS = ("pip",)  # the kit runs pip from its wheel: no ensurepip or system pip needed


class ClosureError(Exception):
    """A wheelhouse that cannot install offline on at least one of its targets."""


def platform_tags(arch: str, glibc: str) -> list[str]:
    """Every manylinux tag a kit with this glibc (or newer) runs, newest first."""
    major, minor = (int(p) for p in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


@dataclass(frozen=True)
class Target:
    arch: str
    python: tuple[int, int]
    glibc: str

    @classmethod
    def from_key(cls, key: str, glibc: str) -> Target:
        arch, _, cp = key.partition("-cp")
        return cls(arch, (int(cp[0]), int(cp[1:])), glibc)

    @property
    def key(self) -> str:
        return f"{self.arch}-cp{self.python[0]}{self.python[1]}"

    def environment(self, extra: str = "") -> dict[str, str]:
        """PEP 508 marker values on this kit (a patch level of .0: the oldest of the series)."""
        version = f"{self.python[0]}.{self.python[1]}"
        return {
            "python_version": version,
            "python_full_version": f"{version}.0",
            "platform_machine": self.arch,
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_python_implementation": "CPython",
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "platform_release": "",
            "platform_version": "",
            "extra": extra,
        }

    def tags(self) -> set[Tag]:
        platforms = platform_tags(self.arch, self.glibc)
        return set(cpython_tags(self.python, platforms=platforms)) | set(
            compatible_tags(self.python, f"cp{self.python[0]}{self.python[1]}", platforms)
        )


@dataclass
class _Wheel:
    path: Path
    version: Version
    _metadata: email.message.Message | None = field(default=None, repr=False)

    def metadata(self) -> email.message.Message:
        if self._metadata is None:
            with zipfile.ZipFile(self.path) as archive:
                name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
                self._metadata = email.parser.BytesParser().parsebytes(archive.read(name), headersonly=True)
        return self._metadata


def _wheels_of(root: Path, files: list[str], target: Target, problems: list[str]) -> dict[str, _Wheel]:
    """The target's wheels by project name; a wheel the target cannot install is a problem."""
    accepted, found = target.tags(), {}
    for name in files:
        project, version, _, tags = parse_wheel_filename(name)
        if not tags & accepted:
            problems.append(f"{target.key}: {name} does not install on this target (wrong tags)")
        if project in found:
            problems.append(f"{target.key}: two wheels of {project} ({found[project].path.name}, {name})")
        found[project] = _Wheel(root / name, version)
        problems.extend(_python_problem(target, found[project]))
    return found


def check_target(root: Path, target: Target, files: list[str], requirement: str) -> list[str]:
    """What the target lacks (empty when every requirement is met), reading only metadata."""
    problems: list[str] = []
    wheels = _wheels_of(root, files, target, problems)
    todo = [(Requirement(requirement), "the wheelhouse")] + [(Requirement(n), "the kit") for n in ALWAYS]
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while todo:
        wanted, by = todo.pop()
        name = canonicalize_name(wanted.name)
        if (name, frozenset(wanted.extras)) in seen:
            continue
        seen.add((name, frozenset(wanted.extras)))
        wheel = wheels.get(name)
        if wheel is None:
            problems.append(f"{target.key}: {wanted} (needed by {by}) has no wheel")
            continue
        if not wanted.specifier.contains(wheel.version, prereleases=True):
            problems.append(f"{target.key}: {wanted} (needed by {by}) but the wheel is {wheel.version}")
        for line in wheel.metadata().get_all("Requires-Dist") or []:
            dep = Requirement(line)
            if _applies(dep.marker, target, wanted.extras):
                todo.append((dep, f"{wheel.path.name}"))
    return problems


def _applies(marker: Marker | None, target: Target, extras: set[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate(target.environment(extra)) for extra in ("", *sorted(extras)))


def _python_problem(target: Target, wheel: _Wheel) -> list[str]:
    requires = wheel.metadata().get("Requires-Python")
    version = Version(f"{target.python[0]}.{target.python[1]}.0")
    if requires and not SpecifierSet(requires).contains(version, prereleases=True):
        return [f"{target.key}: {wheel.path.name} requires Python {requires}"]
    return []


def check(root: Path) -> dict[str, list[str]]:
    """Problems per target of the wheelhouse at root (every target listed, empty when complete)."""
    manifest = json.loads((root / MANIFEST).read_text())
    return {
        key: check_target(root, Target.from_key(key, manifest["glibc"]), files, manifest["requirement"])
        for key, files in sorted(manifest["targets"].items())
    }


def require_complete(root: Path) -> None:
    """Raise ClosureError naming every gap, so a build never ships a stick that fails on a kit."""
    gaps = [p for problems in check(root).values() for p in problems]
    if gaps:
        raise ClosureError(
            "the wheelhouse is incomplete; rebuild it (python packaging/wheelhouse.py --out DIR):\n  "
            + "\n  ".join(gaps)
        )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python packaging/wheel_closure.py WHEELHOUSE", file=sys.stderr)
        return 2
    results = check(Path(args[0]))
    for key, problems in results.items():
        print(f"{key}: {'complete' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
