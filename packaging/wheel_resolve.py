"""Resolve one kit target with that target's own markers, then download exactly its wheels.

Why uv for the resolution: `pip download --python-version X --platform P` picks wheels for the
target but evaluates environment markers against the *building* interpreter (a known pip
limitation), so a wheelhouse built on 3.11 lacks `exceptiongroup` for 3.10 kits and an x86_64
laptop misjudges `platform_machine` for aarch64 ones. `uv pip compile --python-version X
--python-platform ARCH-manylinux_2_NN` resolves for the named environment itself (markers,
Requires-Python, wheel tags), which pip cannot be made to do without re-implementing a resolver.
The pins it writes are then fetched with `pip download --no-deps` (no resolution, so no markers
left for pip to misjudge), and `wheel_closure.py` proves the result independently.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from wheel_closure import Target, platform_tags

CONSTRAINTS = Path(__file__).resolve().parent / "constraints"
_NETWORK_WORDS = (
    "Failed to fetch",
    "Could not fetch",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "dns error",
    "Network is unreachable",
    "Connection refused",
    "timed out",
    "Max retries exceeded",
)


class ResolveError(SystemExit):
    """Resolution or download failed; `offline` when it looks like the index was unreachable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.offline = any(word in message for word in _NETWORK_WORDS)


def constraints_file(python: tuple[int, int]) -> Path:
    """The tested versions for kits on this Python (packaging/constraints/kit-py3XX.txt)."""
    return CONSTRAINTS / f"kit-py{python[0]}{python[1]}.txt"


def _uv() -> list[str]:
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("the wheelhouse is resolved with uv: pip install uv (or install it from astral.sh)")
    return [found]


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=_quiet_env())
    if done.returncode != 0:
        raise ResolveError(f"{what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(target: Target, requirement: str, project_dir: Path) -> list[str]:
    """`name==version` for every distribution the target installs, pip included."""
    with tempfile.TemporaryDirectory() as tmp:
        wanted = Path(tmp) / "requirements.in"
        wanted.write_text(f"{requirement}\npip\n")
        constraints = constraints_file(target.python)
        out = _run(
            [
                *_uv(),
                "pip",
                "compile",
                "--quiet",
                "--no-config",
                "--no-header",
                "--no-annotate",
                "--no-emit-index-url",
                "--only-binary",
                ":all:",
                "--python-version",
                f"{target.python[0]}.{target.python[1]}",
                "--python-platform",
                f"{target.arch}-manylinux_{target.glibc.replace('.', '_')}",
                "--find-links",
                str(project_dir),
                *(["--constraint", str(constraints)] if constraints.exists() else []),
                str(wanted),
            ],
            f"resolving {requirement} for {target.key}",
        )
    return sorted(line.split(";")[0].strip() for line in out.splitlines() if "==" in line)


def download(target: Target, pins: list[str], project_dir: Path, dest: Path) -> list[str]:
    """Fetch the pinned wheels for the target into dest (skipping those already there)."""
    platforms = [arg for tag in platform_tags(target.arch, target.glibc) for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--dest",
                tmp,
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                f"{target.python[0]}.{target.python[1]}",
                *platforms,
                "--find-links",
                str(project_dir),
                "--find-links",
                str(dest),  # wheels an earlier build fetched are not fetched again
                *pins,
            ],
            f"downloading the wheels for {target.key}",
        )
        names = sorted(p.name for p in Path(tmp).glob("*.whl"))
        for name in names:
            if not (dest / name).exists():
                shutil.move(str(Path(tmp) / name), dest / name)
    return names
