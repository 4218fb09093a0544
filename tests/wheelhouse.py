"""The offline wheelhouse for this machine's kind of kit, built once per test session.

Built by the real `packaging/wheelhouse.py`, so the tests that provision from it also test the
script. It lives in a cache folder that outlives the session (KITFLEET_TEST_CACHE, default
~/.cache/kitfleet-tests): a rebuild reuses the recorded resolution and the wheels already there,
so only the first run needs PyPI (it is skipped, with the reason, when PyPI cannot be reached).
`broken_copy` makes a wheelhouse whose kitfleet wheel is damaged on purpose, the way a bad
release would be: valid zip, valid manifest, wrong code.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from app.provision.wheelhouse import MANIFEST, Wheelhouse, write_manifest

REPO = Path(__file__).resolve().parents[1]


def builder() -> ModuleType:
    """packaging/wheelhouse.py (a script, not a package), loaded under its own name."""
    spec = importlib.util.spec_from_file_location(
        "kitfleet_wheelhouse_builder", REPO / "packaging" / "wheelhouse.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def this_target() -> tuple[str, str]:
    return platform.machine(), f"{sys.version_info[0]}.{sys.version_info[1]}"


def interpreter(version: str) -> Path | None:
    """A CPython X.Y on this machine: pyenv's, else one on PATH."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python{version}"))
    found = pyenv[-1] if pyenv else shutil.which(f"python{version}")
    return Path(found) if found else None


def cache_dir() -> Path:
    """Downloads kept between test runs, so reruns are offline and fast."""
    default = Path.home() / ".cache" / "kitfleet-tests"
    path = Path(os.environ.get("KITFLEET_TEST_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_cached(name: str, arches: list[str], pythons: list[str]) -> Path:
    """A wheelhouse in the test cache, brought up to date with this checkout (one builder at a
    time); skipped with pip's or uv's words when the index cannot be reached."""
    out = cache_dir() / name
    script = builder()
    with (cache_dir() / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            script.build(out, arches, pythons, script.DEFAULT_GLIBC, None)
        except script.ResolveError as exc:
            if exc.offline:
                pytest.skip(f"cannot build the wheelhouse without PyPI: {str(exc.code)[-300:]}")
            raise
    return out


def ensure_wheelhouse() -> Path:
    arch, python = this_target()
    return build_cached(f"wheelhouse-{arch}-cp{python.replace('.', '')}", [arch], [python])


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    return ensure_wheelhouse()


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def broken_copy(source: Path, dest: Path, member: str, appended: str) -> Path:
    """A copy of the wheelhouse whose kitfleet wheel has `appended` added to `member`."""
    dest.mkdir(parents=True)
    house = Wheelhouse.load(source)
    for name in house.files:
        os.link(source / name, dest / name)
    project = next(n for n in house.files if n.startswith("kitfleet-"))
    (dest / project).unlink()
    with (
        zipfile.ZipFile(source / project) as src,
        zipfile.ZipFile(dest / project, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        changed = src.read(member) + f"\n{appended}\n".encode()
        for info in src.infolist():
            if info.filename == record_name:
                continue
            out.writestr(info, changed if info.filename == member else src.read(info))
        record = [
            (_record_line(member, changed) if line.startswith(member + ",") else line)
            for line in src.read(record_name).decode().splitlines()
        ]
        out.writestr(record_name, "\n".join(record) + "\n")
    write_manifest(dest, house.project, house.version, house.requirement, house.glibc, house.targets)
    return dest


def retarget(source: Path, dest: Path, targets: dict[str, str]) -> Path:
    """A wheelhouse with the same files filed under other targets (as if built for other kits)."""
    shutil.copytree(source, dest, copy_function=os.link)
    manifest = json.loads((dest / MANIFEST).read_text())
    manifest["targets"] = {new: manifest["targets"][old] for old, new in targets.items()}
    (dest / MANIFEST).unlink()  # a hard link to the original: never write through it
    (dest / MANIFEST).write_text(json.dumps(manifest))
    return dest
