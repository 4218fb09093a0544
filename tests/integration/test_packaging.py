"""Packaging is code: the wheelhouse for this machine and the agent's .deb, built and inspected.

The .deb is unpacked into a temporary folder (never installed into this machine) and the agent
is started from the venv inside it, on loopback without mDNS.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from app import __version__
from app.fleet.localagent import LocalAgent
from app.provision import Unsupported, WheelhouseError
from app.provision.wheelhouse import MANIFEST, Wheelhouse, target_key
from tests.wheelhouse import REPO, build_cached, interpreter, this_target, wheelhouse

__all__ = ["wheelhouse"]  # the session fixture, imported so pytest finds it


HARDENING = {
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "ProtectClock": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "ProtectProc": "invisible",
    "UMask": "0077",
}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_wheelhouse_for_this_machine(wheelhouse: Path, tmp_path: Path) -> None:
    arch, python = this_target()
    house = Wheelhouse.load(wheelhouse)
    assert house.version == __version__
    assert house.requirement == f"kitfleet[agent]=={__version__}"
    files = house.select(arch, (sys.version_info[0], sys.version_info[1]))
    names = {f.name for f in files}
    for needed in ("kitfleet", "pip", "onnxruntime", "numpy", "fastapi", "cryptography"):
        assert any(n.startswith(f"{needed}-") for n in names), needed
    cp = f"cp{python.replace('.', '')}"
    for name in names:  # only portable wheels for this kind of kit
        python_tag, abi, platform_tag = name[:-4].split("-")[-3:]
        assert platform_tag == "any" or ("manylinux" in platform_tag and arch in platform_tag), name
        assert platform_tag == "any" or cp in python_tag or abi == "abi3", name
    done = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"],
        cwd=wheelhouse,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    house.verify(files)

    copy = tmp_path / "damaged"
    shutil.copytree(wheelhouse, copy)
    victim = copy / next(n for n in sorted(names) if n.startswith("pip-"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    damaged = Wheelhouse.load(copy)
    with pytest.raises(WheelhouseError, match="does not match its sha256"):
        damaged.verify(damaged.select(arch, (sys.version_info[0], sys.version_info[1])))
    with pytest.raises(Unsupported, match=r"no wheels for .* CPython 3\.9"):
        house.select(arch, (3, 9))
    assert target_key(arch, (3, 9)) not in json.loads((wheelhouse / MANIFEST).read_text())["targets"]


def test_platform_tags_cover_older_manylinux() -> None:
    script = load(REPO / "packaging" / "wheelhouse.py", "wheelhouse_script")
    tags = script.platform_tags("aarch64", "2.28")
    assert tags[0] == "manylinux_2_28_aarch64"
    assert "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags
    assert not any("x86_64" in t for t in tags)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    _, python = this_target()
    builder = load(REPO / "packaging" / "deb" / "build.py", "deb_build")
    out: Path = builder.build(
        wheelhouse, this_target()[0], python, tmp_path_factory.mktemp("deb"), compression="none"
    )
    return out


def test_deb_control_and_contents(deb: Path) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[this_target()[0]]
    tag = this_target()[1].replace(".", "")
    assert deb.name == f"kitfleet-agent_{__version__}+py{tag}_{arch}.deb"
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    assert fields["Package"] == "kitfleet-agent"
    assert fields["Version"] == f"{__version__}+py{tag}"
    assert fields["Architecture"] == arch
    assert f"python{this_target()[1]}" in fields["Depends"]
    assert "libc6 (>= 2.28)" in fields["Depends"]
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in (
        "./lib/systemd/system/kitfleet-agent.service",
        "./lib/systemd/system/kitfleet-agent-upgrade.service",
        "./lib/systemd/system/kitfleet-agent-upgrade.path",
        "./opt/kitfleet-agent/venvs/deb/bin/kitfleet-agent",
        "./opt/kitfleet-agent/venvs/deb/pyvenv.cfg",
        "./usr/bin/kitfleet-agent -> /opt/kitfleet-agent/current/bin/kitfleet-agent",
        "site-packages/agent/cli.py",
        "site-packages/onnxruntime/",
    ):
        assert path in listing, path
    assert "__pycache__" not in listing  # compiled on the kit by postinst, removed by prerm
    assert "./opt/kitfleet-agent/current" not in listing  # postinst's: an upgrade by bundle moves it


def test_deb_unit_is_hardened_and_runs_the_packaged_agent(deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(root / "lib/systemd/system/kitfleet-agent.service")
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/opt/kitfleet-agent/current/bin/kitfleet-agent run --data-dir /var/lib/kitfleet-agent"
    )
    assert service["Restart"] == "on-failure"
    assert service["User"] == "kitfleet-agent"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/kitfleet-agent"
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert int(unit["Unit"]["StartLimitBurst"]) > 0
    assert int(unit["Unit"]["StartLimitIntervalSec"]) > 0
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # the one grant beyond the data dir: this user may ask timedated to set the clock, nothing else
    rule = (root / "usr/share/polkit-1/rules.d/50-kitfleet-clock.rules").read_text()
    assert '"org.freedesktop.timedate1.set-time"' in rule
    assert 'subject.user == "kitfleet-agent"' in rule
    assert rule.count("polkit.Result.YES") == 1
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    postinst = (control / "postinst").read_text()
    assert "adduser --system" in postinst
    assert "[ -d /run/systemd/system ]" in postinst  # no systemctl in containers without it
    # the .deb's venv serves after every install or upgrade of the .deb, even after a bundle's
    assert "ln -sfn venvs/deb /opt/kitfleet-agent/current.new" in postinst
    assert "systemctl enable --now kitfleet-agent-upgrade.path" in postinst
    upgrade = configparser.ConfigParser(strict=False, interpolation=None)
    upgrade.optionxform = str  # type: ignore[assignment,method-assign]
    upgrade.read(root / "lib/systemd/system/kitfleet-agent-upgrade.service")
    assert upgrade["Service"]["Type"] == "oneshot"
    assert upgrade["Service"]["ExecStart"] == (
        "/opt/kitfleet-agent/current/bin/kitfleet-agent apply-upgrade --data-dir /var/lib/kitfleet-agent"
        " --venvs /opt/kitfleet-agent --user kitfleet-agent"
    )
    assert upgrade["Service"]["ReadWritePaths"] == "/opt/kitfleet-agent /var/lib/kitfleet-agent"
    path = (root / "lib/systemd/system/kitfleet-agent-upgrade.path").read_text()
    assert "PathExists=/var/lib/kitfleet-agent/upgrade/request.json" in path
    assert os.access(control / "postinst", os.X_OK)

    venv = root / "opt/kitfleet-agent/venvs/deb"
    python = venv / "bin" / "python"
    if not python.exists():  # a symlink to the system's /usr/bin/python3.X
        pytest.skip(f"this machine has no {os.readlink(python)}")
    # -I: isolated, so neither the work tree (cwd) nor PYTHONPATH can supply the agent instead.
    where = subprocess.run(
        [str(python), "-I", "-c", "import agent, sys; print(agent.__file__); print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    module, prefix = where.stdout.split()
    assert Path(module).is_relative_to(venv)
    assert Path(prefix) == venv
    launcher = (venv / "bin" / "kitfleet-agent").read_text()
    assert launcher.startswith("#!/opt/kitfleet-agent/venvs/deb/bin/python\n")

    class PackagedAgent(LocalAgent):
        def command(self) -> list[str]:
            return [str(python), "-I", "-m", "agent", *super().command()[3:]]

    agent = PackagedAgent(tmp_path / "data", "deb-kit", mdns=False)
    try:
        health = agent.start().health()
    finally:
        agent.stop()
    assert health["status"] == "ok"
    assert health["version"] == __version__


def test_pyinstaller_spec_reads_the_package() -> None:
    spec = (REPO / "packaging/pyinstaller/kitfleet.spec").read_text()
    assert "specdata.version()" in spec
    assert "specdata.datas()" in spec
    assert not re.search(r"\d+\.\d+\.\d+", spec)  # no version typed into the spec
    specdata = load(REPO / "packaging/pyinstaller/specdata.py", "specdata")
    assert specdata.version() == __version__
    bundled = {Path(src).relative_to(REPO).as_posix(): dest for src, dest in specdata.datas()}
    assert bundled["resources/models/digits-cnn-int8.onnx"] == "resources/models"
    assert bundled["app/provision/supervisor.py"] == "app/provision"
    hidden = specdata.hidden_imports()
    assert "app.cli.provision" in hidden
    assert {"agent.cli", "agent.server", "agent.api.app", "uvicorn.loops.auto"} <= set(hidden)
    assert Path(specdata.icon()).exists()
    assert "entry.py" in spec
    assert 'name="kitfleet")' in spec  # dist/kitfleet/kitfleet, as the README says


def test_pyinstaller_bundles_the_xcb_libraries_qt_needs_on_a_real_display() -> None:
    specdata = load(REPO / "packaging/pyinstaller/specdata.py", "specdata")
    try:
        libraries = specdata.xcb_libraries()
    except SystemExit as exc:  # the build machine lacks some: the build stops and says which
        pytest.skip(str(exc))
    names = {Path(path).name.split(".so")[0] for path, _ in libraries}
    assert {"libxcb-icccm", "libxcb-keysyms"} <= names
    assert all(Path(path).exists() and dest == "." for path, dest in libraries)


def test_the_bundles_entry_runs_the_agent_for_the_demo_and_checks_glibc() -> None:
    entry_py = REPO / "packaging/pyinstaller/entry.py"
    said = subprocess.run(
        [sys.executable, str(entry_py), "-m", "agent", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert said.stdout.strip() == f"kitfleet-agent {__version__}"  # not the app's "invalid choice"
    child = subprocess.run(  # how the agent starts its model checks (agent/warm.py)
        [sys.executable, str(entry_py), "-c", "import sys; print(sys.argv)", "agent.models.verify", "x"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert child.stdout.strip() == "['-c', 'agent.models.verify', 'x']"
    entry = load(entry_py, "kitfleet_entry")
    assert entry.glibc_problem("2.36", "2.36") is None
    assert entry.glibc_problem("2.39", "2.36") is None
    assert entry.glibc_problem("2.35", None) is None  # not frozen: no floor recorded
    problem = entry.glibc_problem("2.35", "2.36")
    assert "needs glibc 2.36 or newer and this system has 2.35" in problem
    assert "pip install" in problem


def test_desktop_entry_and_icon() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(REPO / "packaging/kitfleet.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"] == "kitfleet"  # no arguments: the window
    assert desktop["Icon"] == "kitfleet"
    assert desktop["Categories"].endswith(";")
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(REPO / "packaging/kitfleet.desktop")], check=True)
    icons = REPO / "packaging" / "icons"
    assert (icons / "kitfleet.svg").read_text().lstrip().startswith("<?xml")
    for size in (48, 256):
        png = (icons / f"kitfleet-{size}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(png[16:20], "big") == size  # IHDR width


def test_wheels_are_real_zip_archives(wheelhouse: Path) -> None:
    project = next(wheelhouse.glob("kitfleet-*.whl"))
    with zipfile.ZipFile(project) as wheel:
        names = set(wheel.namelist())
    assert "app/provision/supervisor.py" in names
    assert "agent/cli.py" in names
    assert any(n.startswith("resources/models/") for n in names)


def _wheel(folder: Path, name: str, tag: str, requires: tuple[str, ...] = (), python: str = "") -> str:
    """A minimal wheel: only its METADATA matters to the closure check."""
    dist, version = name.split("-")
    filename = f"{dist}-{version}-{tag}.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
    lines += [f"Requires-Python: {python}"] if python else []
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(folder / filename, "w") as wheel:
        wheel.writestr(f"{dist}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
    return filename


def test_closure_check_evaluates_markers_per_target(tmp_path: Path) -> None:
    closure = load(REPO / "packaging" / "wheel_closure.py", "wheel_closure_script")
    base = [
        _wheel(tmp_path, "kitfleet-0.1.0", "py3-none-any", ("anyio>=4; extra == 'agent'", "pydantic")),
        _wheel(
            tmp_path,
            "anyio-4.16.0",
            "py3-none-any",
            ("exceptiongroup>=1.0.2; python_version < '3.11'", "uvloop; platform_machine == 'aarch64'"),
        ),
        _wheel(tmp_path, "pydantic-2.14.4", "py3-none-any"),
        _wheel(tmp_path, "pip-26.3", "py3-none-any"),
    ]
    numpy_311 = _wheel(tmp_path, "numpy-2.4.6", "cp311-cp311-manylinux_2_17_x86_64", python=">=3.11")
    targets = {
        "x86_64-cp311": [*base, numpy_311],  # complete: exceptiongroup and uvloop not needed here
        "x86_64-cp310": [*base, numpy_311],  # what pip's download made: 3.11's markers and wheels
        "aarch64-cp311": base,
    }
    from app.provision.wheelhouse import write_manifest

    write_manifest(tmp_path, "kitfleet", "0.1.0", "kitfleet[agent]==0.1.0", "2.28", targets)
    problems = closure.check(tmp_path)
    assert problems["x86_64-cp311"] == []
    cp310 = "\n".join(problems["x86_64-cp310"])
    assert "exceptiongroup>=1.0.2" in cp310
    assert f"{numpy_311} does not install on this target" in cp310
    assert f"{numpy_311} requires Python >=3.11" in cp310
    assert [p for p in problems["aarch64-cp311"] if "uvloop" in p]
    assert closure.main([str(tmp_path)]) == 1
    with pytest.raises(closure.ClosureError, match="exceptiongroup"):
        closure.require_complete(tmp_path)


def test_the_built_wheelhouse_is_complete_and_a_missing_wheel_is_found(
    wheelhouse: Path, tmp_path: Path
) -> None:
    closure = load(REPO / "packaging" / "wheel_closure.py", "wheel_closure_script")
    assert closure.check(wheelhouse) == {target_key(*_this()): []}
    copy = tmp_path / "copy"
    shutil.copytree(wheelhouse, copy, copy_function=os.link)
    manifest = json.loads((copy / MANIFEST).read_text())
    key = target_key(*_this())
    manifest["targets"][key] = [n for n in manifest["targets"][key] if not n.startswith("numpy-")]
    (copy / MANIFEST).unlink()  # a hard link to the cached one
    (copy / MANIFEST).write_text(json.dumps(manifest))
    gaps = closure.check(copy)[key]
    assert gaps
    assert all("numpy" in gap and "has no wheel" in gap for gap in gaps)


def _this() -> tuple[str, tuple[int, int]]:
    return this_target()[0], (sys.version_info[0], sys.version_info[1])


@pytest.mark.timeout(1200)  # the first run downloads both Pythons' wheels into the test cache
@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_a_deb_per_python_installs_into_a_throwaway_root(tmp_path: Path, version: str) -> None:
    """Built on this machine's Python for another one; unpacked with dpkg into a root of its own,
    whose /usr/bin/python3.X is played by this machine's interpreter of that version."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no CPython {version} on this machine (pyenv install {version} adds one)")
    arch = this_target()[0]
    house = build_cached(f"stick-{arch}", [arch], ["3.10", "3.13"])
    builder = load(REPO / "packaging" / "deb" / "build.py", "deb_build")
    deb: Path = builder.build(house, arch, version, tmp_path / "out", compression="none")
    assert deb.name.endswith(f"+py{version.replace('.', '')}_{builder.DEB_ARCH[arch]}.deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    venv = root / "opt/kitfleet-agent/venvs/deb"
    assert os.readlink(venv / "bin" / "python") == f"/usr/bin/python{version}"
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to(python)
    config = (venv / "pyvenv.cfg").read_text().replace("home = /usr/bin", f"home = {python.parent}")
    (venv / "pyvenv.cfg").write_text(config)
    said = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-m", "agent", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert said.stdout.strip() == f"kitfleet-agent {__version__}"
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", _IMPORTS],
        capture_output=True,
        text=True,
        check=True,
    )
    module, *_ = imported.stdout.split()
    assert Path(module).is_relative_to(venv)


# the whole serving stack, as provisioning's self-check imports it (exceptiongroup on 3.10)
_IMPORTS = "import agent, agent.server, agent.api.app, onnxruntime, numpy, av; print(agent.__file__)"
