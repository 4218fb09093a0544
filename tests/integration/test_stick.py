"""The install stick, used as a technician would: `install.sh` on the kit, no network, no app.

The stick is built by the real `packaging/wheelhouse.py` for this machine's architecture and
CPython 3.10-3.13, in two steps (the second adds targets, which must keep the first's), in the
test cache (tests/wheelhouse.py) so only the first run downloads. Then for every one of those
Pythons this machine has, `install.sh --no-systemd` installs into a throwaway prefix with pip
pointed at a closed loopback index, and the installed agent reports the machine's facts.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import pytest

from app.provision.wheelhouse import MANIFEST, Wheelhouse
from tests.wheelhouse import build_cached, interpreter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first run downloads ~300 MB
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
CLOSED_INDEX = "http://127.0.0.1:9/"  # the discard port: an install that tried an index fails


@pytest.fixture(scope="module")
def stick() -> Path:
    arch = platform.machine()
    first, second = list(PYTHONS[:2]), list(PYTHONS[2:])
    build_cached(f"stick-{arch}", [arch], first)
    out = build_cached(f"stick-{arch}", [arch], second)  # adds targets: the first two stay
    assert sorted(Wheelhouse.load(out).targets) == [f"{arch}-cp{p.replace('.', '')}" for p in PYTHONS]
    return out


def test_the_stick_has_a_folder_and_pins_per_target(stick: Path) -> None:
    house = Wheelhouse.load(stick)
    for key, names in house.targets.items():
        pins = (stick / "targets" / key / "requirements.txt").read_text().splitlines()
        assert len(pins) == len(names)
        assert all(" --hash=sha256:" in pin for pin in pins)
        assert any(pin.startswith(f"{house.requirement} ") for pin in pins)
    cp310 = (stick / "targets" / f"{platform.machine()}-cp310" / "requirements.txt").read_text()
    assert "exceptiongroup==" in cp310  # anyio needs it below 3.11: the bug the stick fixes
    assert os.access(stick / "install.sh", os.X_OK)
    unit = (stick / "kitfleet-agent.service.in").read_text()
    assert "ExecStart=@AGENT@ run --data-dir @DATA_DIR@" in unit
    assert json.loads((stick / MANIFEST).read_text())["glibc"] == "2.28"


@pytest.mark.parametrize("version", PYTHONS)
def test_install_sh_installs_offline_and_the_agent_runs(stick: Path, tmp_path: Path, version: str) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no CPython {version} on this machine (pyenv install {version} adds one)")
    prefix, data = tmp_path / "opt", tmp_path / "data"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PIP_INDEX_URL": CLOSED_INDEX,  # install.sh must clear these itself
        "PIP_FIND_LINKS": str(tmp_path / "nowhere"),
    }
    done = subprocess.run(
        [*_install(stick, python), "--prefix", str(prefix), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cp = f"cp{version.replace('.', '')}"
    assert f"for {platform.machine()}-{cp}" in done.stdout
    assert "Pairing code: " in done.stdout
    agent = prefix / "current" / "bin" / "kitfleet-agent"
    facts = subprocess.run(
        [str(agent), "facts", "--json", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    answer = json.loads(facts.stdout)
    assert answer["cpu"]["arch"] == platform.machine()
    assert answer["cpu"]["logical_cores"] >= 1
    venv_python = prefix / "current" / "bin" / "python"
    said = subprocess.run(
        [str(venv_python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert said.stdout.strip() == version
    assert oct(data.stat().st_mode & 0o777) == "0o700"


def test_install_sh_refuses_a_python_the_stick_lacks(stick: Path, tmp_path: Path) -> None:
    python = interpreter("3.9")
    if python is None:
        pytest.skip("no CPython 3.9 on this machine to be refused")
    done = subprocess.run(
        [*_install(stick, python), "--prefix", str(tmp_path / "opt"), "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "no wheels for" in done.stderr
    assert "packaging/wheelhouse.py --arch" in done.stderr
    assert not (tmp_path / "opt").exists()


def _install(stick: Path, python: Path) -> list[str]:
    return ["sh", str(stick / "install.sh"), "--no-systemd", "--python", str(python)]
