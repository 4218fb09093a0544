"""Build the offline wheelhouse: the agent and every dependency, for each kit platform.

    python packaging/wheelhouse.py --out dist/wheelhouse            # x86_64 + aarch64, 3.10-3.12
    python packaging/wheelhouse.py --out wh --arch x86_64 --python 3.11   # just this kind of kit

Run on a machine with internet; carry the folder to the field. Wheels are manylinux binaries
(`pip download --only-binary=:all: --platform ...`), so a laptop of any architecture can build
for every kit. The project's own wheel is built from this checkout (or given). The folder gets a
manifest.json (per-target file lists, sha256 and sizes) and a `sha256sum -c`-able SHA256SUMS.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.provision.wheelhouse import ARCHES, target_key, write_manifest  # noqa: E402

DEFAULT_PYTHONS = ("3.10", "3.11", "3.12")  # Ubuntu 22.04 / Jetson, Debian 12, Ubuntu 24.04
DEFAULT_GLIBC = "2.28"
_SOURCES = ("pyproject.toml", "README.md", "app", "agent", "resources")


def platform_tags(arch: str, glibc: str) -> list[str]:
    """Every manylinux tag a kit with this glibc (or newer) runs: pip takes them as given."""
    major, minor = (int(p) for p in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def build_project_wheel(dest: Path) -> Path:
    """`pip wheel` of a clean copy of the checkout, so no build/ is left in the work tree."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in _SOURCES:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, source / name)
        # Build with this environment's setuptools when it has one: no index needed for the build.
        local = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))
        flags = ["--no-build-isolation"] if local else []
        _pip("wheel", "--no-deps", *flags, "-w", str(dest), str(source))
    wheels = sorted(dest.glob("kitfleet-*.whl"))
    if not wheels:
        raise SystemExit("pip wheel made no kitfleet wheel")
    return wheels[-1]


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pip {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def download_target(
    arch: str, python: str, glibc: str, project: Path, requirement: str, dest: Path
) -> list[str]:
    """The wheels one target needs (pip's own resolution), into dest; returns their names."""
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [arg for tag in platform_tags(arch, glibc) for arg in ("--platform", tag)]
        _pip(
            "download",
            "--dest",
            tmp,
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            *platforms,
            "--find-links",
            str(project.parent),
            requirement,
            "pip",
        )
        names = sorted(p.name for p in Path(tmp).glob("*.whl"))
        for name in names:
            if not (dest / name).exists():
                shutil.move(str(Path(tmp) / name), dest / name)
    return names


def build(
    out: Path, arches: list[str], pythons: list[str], glibc: str, project_wheel: Path | None
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "project"
        staged.mkdir()
        project = Path(shutil.copy2(project_wheel, staged)) if project_wheel else build_project_wheel(staged)
        version = project.name.split("-")[1]
        requirement = f"kitfleet[agent]=={version}"
        targets: dict[str, list[str]] = {}
        for arch in arches:
            for python in pythons:
                key = target_key(arch, (int(python.split(".")[0]), int(python.split(".")[1])))
                print(f"{key}: resolving {requirement} ...", flush=True)
                targets[key] = download_target(arch, python, glibc, project, requirement, out)
        if not (out / project.name).exists():
            shutil.copy2(project, out / project.name)
    manifest = write_manifest(out, "kitfleet", version, requirement, glibc, targets)
    files = manifest["files"]
    assert isinstance(files, dict)
    total = sum(int(f["size"]) for f in files.values())
    print(f"{out}: {len(files)} wheels, {total / 1e6:.0f} MB, targets {', '.join(targets)}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the wheelhouse folder")
    parser.add_argument(
        "--arch", action="append", choices=ARCHES, help="kit architecture (repeatable; default both)"
    )
    parser.add_argument(
        "--python",
        action="append",
        help=f"kit CPython X.Y (repeatable; default {', '.join(DEFAULT_PYTHONS)})",
    )
    parser.add_argument(
        "--glibc", default=DEFAULT_GLIBC, help=f"oldest kit glibc to support (default {DEFAULT_GLIBC})"
    )
    parser.add_argument(
        "--project-wheel", type=Path, help="a kitfleet wheel to ship instead of building this checkout"
    )
    args = parser.parse_args(argv)
    build(
        args.out,
        args.arch or list(ARCHES),
        args.python or list(DEFAULT_PYTHONS),
        args.glibc,
        args.project_wheel,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
