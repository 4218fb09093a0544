"""Build the offline wheelhouse (the install stick): the agent and every dependency, per kit target.

    python packaging/wheelhouse.py --out /media/stick                # x86_64 + aarch64, 3.10-3.13
    python packaging/wheelhouse.py --out /media/stick --arch aarch64 --python 3.13   # adds a target

Run on a machine with internet; carry the folder to the field. Each target (architecture +
CPython X.Y) is resolved with its own markers (uv, see wheel_resolve.py) against the tested
versions in packaging/constraints/kit-py3XX.txt, its wheels fetched as manylinux binaries, and
the whole folder proven complete (wheel_closure.py) before it is called done. Adding targets to
an existing folder keeps the earlier ones (re-resolved if the kitfleet version changed). The
folder is both a wheelhouse for `kitfleet provision --wheelhouse DIR` and a stick a technician
uses without the app: `sh install.sh` on the kit (see stick.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "packaging"))

from packaging.utils import canonicalize_name, parse_wheel_filename  # noqa: E402
from stick import write_stick  # noqa: E402
from wheel_closure import ClosureError, Target, platform_tags, require_complete  # noqa: E402
from wheel_resolve import ResolveError, constraints_file, download, resolve  # noqa: E402

from app.provision.wheelhouse import ARCHES, MANIFEST, write_manifest  # noqa: E402

__all__ = ["ClosureError", "ResolveError", "build", "platform_tags"]

# Ubuntu 22.04 / Jetson, Debian 12, Ubuntu 24.04, newer images
DEFAULT_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
DEFAULT_GLIBC = "2.28"
_SOURCES = ("pyproject.toml", "README.md", "app", "agent", "resources")
_RESOLVED = "resolved.txt"  # per target: the pins and what they were resolved from


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
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-w", str(dest), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:  # (with build isolation, pip fetches setuptools: maybe offline)
            raise ResolveError(f"pip wheel failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    wheels = sorted(dest.glob("kitfleet-*.whl"))
    if not wheels:
        raise SystemExit("pip wheel made no kitfleet wheel")
    return wheels[-1]


def _origin(target: Target, requirement: str) -> str:
    """What a resolution depends on: if this is unchanged, the pins are too (reruns are offline)."""
    constraints = constraints_file(target.python)
    digest = hashlib.sha256(constraints.read_bytes()).hexdigest() if constraints.exists() else "none"
    return f"# {requirement} glibc {target.glibc} constraints {digest}\n"


def pins_for(target: Target, requirement: str, project_dir: Path, out: Path) -> list[str]:
    """The target's pins, resolved again only when the requirement or constraints changed."""
    record = out / "targets" / target.key / _RESOLVED
    origin = _origin(target, requirement)
    if record.exists() and record.read_text().startswith(origin):
        return record.read_text().splitlines()[1:]
    print(f"{target.key}: resolving {requirement} ...", flush=True)
    pins = resolve(target, requirement, project_dir)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(origin + "".join(f"{pin}\n" for pin in pins))
    return pins


def _present(target: Target, pin: str, out: Path) -> str | None:
    """A wheel already in the folder that satisfies the pin on this target."""
    name, _, version = pin.partition("==")
    accepted = target.tags()
    for path in out.glob("*.whl"):
        project, wheel_version, _, tags = parse_wheel_filename(path.name)
        if project == canonicalize_name(name) and str(wheel_version) == version and tags & accepted:
            return path.name
    return None


def fetch_target(target: Target, requirement: str, project: Path, out: Path) -> list[str]:
    """The file names the target installs; only wheels not yet in the folder are downloaded."""
    pins = [p for p in pins_for(target, requirement, project.parent, out) if not p.startswith("kitfleet==")]
    have = {pin: _present(target, pin, out) for pin in pins}
    missing = [pin for pin, name in have.items() if name is None]
    fetched = download(target, missing, project.parent, out) if missing else []
    return sorted([*(n for n in have.values() if n), *fetched, project.name])


def _python(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def _earlier(out: Path, version: str, glibc: str) -> tuple[dict[str, list[str]], list[str]]:
    """(targets to keep as they are, target keys to rebuild) from an existing manifest."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return {}, []
    targets: dict[str, list[str]] = manifest["targets"]
    if manifest["version"] == version and manifest["glibc"] == glibc:
        return targets, []
    return {}, sorted(targets)  # another kitfleet or glibc floor: keep the targets, not their files


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
        targets, rebuild = _earlier(out, version, glibc)
        wanted = [Target.from_key(k, glibc) for k in rebuild]
        wanted += [Target(a, _python(p), glibc) for a in arches for p in pythons]
        for target in wanted:
            targets[target.key] = fetch_target(target, requirement, project, out)
        shutil.copy2(project, out / project.name)  # always this build's, even if the name is the same
    manifest = write_manifest(out, "kitfleet", version, requirement, glibc, targets)
    _drop_unlisted(out, manifest)
    write_stick(out, manifest)
    require_complete(out)
    files = manifest["files"]
    assert isinstance(files, dict)
    total = sum(int(f["size"]) for f in files.values())
    print(f"{out}: {len(files)} wheels, {total / 1e6:.0f} MB, complete for {', '.join(sorted(targets))}")
    return manifest


def _drop_unlisted(out: Path, manifest: dict[str, object]) -> None:
    """Wheels no target lists any more (an older kitfleet, a replaced pin) would only take room."""
    files = manifest["files"]
    assert isinstance(files, dict)
    for path in out.glob("*.whl"):
        if path.name not in files:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the wheelhouse folder (the stick)")
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
    try:
        build(
            args.out,
            args.arch or list(ARCHES),
            args.python or list(DEFAULT_PYTHONS),
            args.glibc,
            args.project_wheel,
        )
    except ClosureError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
