"""The offline wheelhouse: wheels for every kit target, with a manifest of sha256 sums.

`packaging/wheelhouse.py` writes it; provisioning reads it and copies only the files
one kit's target (architecture + CPython version) needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.toolkit.hashing import sha256_file
from agent.toolkit.wheelhouse import (
    ARCHES,
    FORMAT,
    MANIFEST,
    SUMS,
    HouseManifest,
    describe_target,
    normalise_arch,
    pip_wheel,
    target_key,
)
from app.provision.errors import Unsupported, WheelhouseError

__all__ = [
    "ARCHES",
    "FORMAT",
    "MANIFEST",
    "SUMS",
    "WheelFile",
    "Wheelhouse",
    "describe_target",
    "normalise_arch",
    "target_key",
    "write_manifest",
]


@dataclass(frozen=True)
class WheelFile:
    name: str
    sha256: str
    size: int
    path: Path


@dataclass(frozen=True)
class Wheelhouse:
    root: Path
    project: str
    version: str
    requirement: str
    glibc: str
    targets: dict[str, list[str]]
    files: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, root: Path) -> Wheelhouse:
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise WheelhouseError(
                f"no wheelhouse at {root} ({MANIFEST} missing); build one on a machine with "
                "internet (README, Provisioning and packaging) and pass it with "
                f"`kitfleet provision USER@HOST --wheelhouse {root}`"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise WheelhouseError(f"cannot read {path}: {exc}; rebuild the wheelhouse") from exc
        try:
            parsed = HouseManifest.parse(data)  # the same check a kit makes of a bundled one
        except ValueError as exc:
            raise WheelhouseError(f"{path}: {exc}; rebuild the wheelhouse") from exc
        return cls(
            root,
            parsed.project,
            parsed.version,
            parsed.requirement,
            parsed.glibc,
            parsed.targets,
            parsed.files,
        )

    def select(self, arch: str, python: tuple[int, int]) -> list[WheelFile]:
        """The files one kit needs, or Unsupported naming what the wheelhouse has."""
        key = target_key(arch, python)
        if key not in self.targets:
            have = ", ".join(describe_target(k) for k in sorted(self.targets)) or "nothing"
            raise Unsupported(
                f"the wheelhouse {self.root} has no wheels for {describe_target(key)} (it has: "
                f"{have}); build one for {normalise_arch(arch)} and Python {python[0]}.{python[1]} on a "
                "machine with internet (README, Provisioning and packaging) and pass it with "
                "`kitfleet provision USER@HOST --wheelhouse DIR`"
            )
        return [
            WheelFile(n, self.files[n]["sha256"], int(self.files[n]["size"]), self.root / n)
            for n in self.targets[key]
        ]

    def pip_wheel(self, files: list[WheelFile]) -> WheelFile | None:
        """pip itself, run from its wheel, so the kit needs neither pip nor ensurepip."""
        name = pip_wheel([f.name for f in files])
        return next((f for f in files if f.name == name), None)

    def verify(self, files: list[WheelFile]) -> None:
        """Every file present with the manifest's size and sha256, before anything is copied."""
        for wheel in files:
            if not wheel.path.exists():
                raise WheelhouseError(
                    f"{wheel.path} is listed in the manifest but missing; rebuild or re-copy the wheelhouse"
                )
            if wheel.path.stat().st_size != wheel.size or sha256_file(wheel.path) != wheel.sha256:
                raise WheelhouseError(
                    f"{wheel.path} does not match its sha256 in {MANIFEST} "
                    "(damaged copy?); rebuild or re-copy the wheelhouse"
                )


def write_manifest(
    root: Path, project: str, version: str, requirement: str, glibc: str, targets: dict[str, list[str]]
) -> dict[str, Any]:
    """Hash every listed file and write manifest.json plus `sha256sum -c`-able SHA256SUMS."""
    names = sorted({name for files in targets.values() for name in files})
    files = {n: {"sha256": sha256_file(root / n), "size": (root / n).stat().st_size} for n in names}
    manifest = {
        "format": FORMAT,
        "project": project,
        "version": version,
        "requirement": requirement,
        "glibc": glibc,
        "targets": {k: sorted(v) for k, v in sorted(targets.items())},
        "files": files,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (root / SUMS).write_text("".join(f"{f['sha256']}  {n}\n" for n, f in files.items()))
    return manifest
