"""Build the agent's .deb from the offline wheelhouse: a self-contained venv plus the systemd unit.

    python packaging/deb/build.py --wheelhouse dist/wheelhouse --arch x86_64 --python 3.11 --out dist
    # -> dist/kitfleet-agent_0.1.0+py311_amd64.deb, one per (arch, Python) the wheelhouse holds

The venv is assembled without running the kit's interpreter (`pip install --no-deps --target`
of exactly the target's wheels, which the wheelhouse resolved for that target and proved
complete, pinned to packaging/constraints), so a laptop of either architecture and any Python
builds every package. It lives in /opt/kitfleet-agent/venvs/deb and uses the system's python3.X,
which the package depends on; postinst points /opt/kitfleet-agent/current at it, and the unit
runs the agent from `current`, the layout SSH provisioning makes, so an agent upgrade carried in
a bundle can install a second venv beside it and switch (kitfleet-agent-upgrade.path starts
kitfleet-agent-upgrade.service, a root oneshot, when the agent stages one). Installing or
upgrading the .deb points `current` back at the .deb's venv. The units are the ones SSH
provisioning installs (app/provision/service.py), so both behave the same.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from app.provision.layout import SERVICE_USER, SYSTEM_DATA, UNIT_NAME  # noqa: E402
from app.provision.service import (  # noqa: E402
    POLKIT_RULE_NAME,
    UPGRADE_PATH,
    UPGRADE_SERVICE,
    polkit_clock_rule,
    systemd_unit,
    upgrade_path_unit,
    upgrade_service_unit,
)
from app.provision.wheelhouse import WheelFile, Wheelhouse, describe_target, normalise_arch  # noqa: E402

ROOT = "/opt/kitfleet-agent"
PREFIX = f"{ROOT}/venvs/deb"  # agent/bundles/upgrade.py's DEB_VENV: never pruned by an upgrade
CURRENT = f"{ROOT}/current"  # made by postinst, not shipped: an upgrade by bundle moves it
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd {SERVICE_USER} >/dev/null; then
        adduser --system --group --home {SYSTEM_DATA} --no-create-home {SERVICE_USER} >/dev/null
    fi
    install -d -o {SERVICE_USER} -g {SERVICE_USER} -m 0700 {SYSTEM_DATA}
    {PREFIX}/bin/python -m compileall -q {PREFIX}/lib >/dev/null 2>&1 || true
    # the .deb just installed serves, also after an agent upgrade by bundle moved `current`
    ln -sfn venvs/deb {CURRENT}.new
    mv -Tf {CURRENT}.new {CURRENT}
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable {UNIT_NAME} >/dev/null 2>&1 || true
        systemctl enable --now {UPGRADE_PATH} >/dev/null 2>&1 || true
        systemctl restart {UNIT_NAME} || true
    fi
fi
"""
PRERM = f"""#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl disable --now {UPGRADE_PATH} >/dev/null 2>&1 || true
    systemctl disable --now {UNIT_NAME} >/dev/null 2>&1 || true
fi
# compiled files are made by postinst, so dpkg does not know them
find /opt/kitfleet-agent -name __pycache__ -type d -prune -exec rm -rf {{}} + 2>/dev/null || true
"""
POSTRM = f"""#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    rm -f {CURRENT} {CURRENT}.new
    # venvs an agent upgrade by bundle installed beside the .deb's (dpkg does not know them)
    rm -rf {ROOT}/venvs/kitfleet-* {ROOT}/.staged-wheels-*
    rmdir {ROOT}/venvs {ROOT} 2>/dev/null || true
fi
if [ "$1" = purge ]; then
    echo "kitfleet-agent: {SYSTEM_DATA} (the kit's identity, models and jobs) is kept; remove it by hand"
fi
"""
LAUNCHER = f"""#!{PREFIX}/bin/python
import sys

from agent.cli import main

sys.exit(main())
"""


def _platform_args(arch: str, glibc: str) -> list[str]:
    sys.path.insert(0, str(REPO / "packaging"))
    from wheel_closure import platform_tags  # packaging/wheel_closure.py

    return [arg for tag in platform_tags(arch, glibc) for arg in ("--platform", tag)]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def stage(root: Path, house: Wheelhouse, wheels: list[WheelFile], arch: str, python: str) -> None:
    """Lay out the package's files under root, as they will be on the kit."""
    venv = root / PREFIX.lstrip("/")
    site = venv / "lib" / f"python{python}" / "site-packages"
    # Exactly the target's wheels, which the wheelhouse's closure check proved complete: pip does
    # no resolving here, so it cannot judge the kit's markers by this machine's interpreter.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            "--no-compile",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            *_platform_args(arch, house.glibc),
            *(str(w.path) for w in wheels if not w.name.startswith("pip-")),
        ],
        check=True,
        env={"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts name the build machine's python
    _write(
        venv / "pyvenv.cfg", f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}\n"
    )
    (venv / "bin").mkdir(exist_ok=True)
    (venv / "bin" / "python").symlink_to(f"/usr/bin/python{python}")
    (venv / "bin" / "python3").symlink_to("python")
    _write(venv / "bin" / "kitfleet-agent", LAUNCHER, 0o755)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "kitfleet-agent").symlink_to(f"{CURRENT}/bin/kitfleet-agent")
    units = root / "lib" / "systemd" / "system"
    _write(units / UNIT_NAME, systemd_unit(f"{CURRENT}/bin/kitfleet-agent", SYSTEM_DATA))
    _write(units / UPGRADE_SERVICE, upgrade_service_unit(ROOT, SYSTEM_DATA))
    _write(units / UPGRADE_PATH, upgrade_path_unit(SYSTEM_DATA))
    _write(root / "usr" / "share" / "polkit-1" / "rules.d" / POLKIT_RULE_NAME, polkit_clock_rule())


def deb_version(version: str, python: str) -> str:
    """The Python in the version too (0.1.0+py311): one .deb per (arch, Python), none overwritten,
    and apt never takes one Python's package for another's."""
    return f"{version}+py{python.replace('.', '')}"


def control(root: Path, house: Wheelhouse, arch: str, python: str) -> None:
    size_kb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    debian = root / "DEBIAN"
    _write(
        debian / "control",
        f"""\
Package: kitfleet-agent
Version: {deb_version(house.version, python)}
Architecture: {DEB_ARCH[arch]}
Maintainer: kitfleet <kitfleet@localhost>
Depends: python{python}, libc6 (>= {house.glibc}), adduser
Section: net
Priority: optional
Installed-Size: {size_kb // 1024 + 1}
Homepage: https://github.com/kitfleet/kitfleet
Description: kitfleet agent for edge AI kits
 Serves the kit's HTTPS API (hardware facts, ONNX models, inference) and runs its durable
 job queue, started by systemd as the unprivileged user {SERVICE_USER}. Adopt the kit from
 the kitfleet app with `kitfleet-agent pair-code` or over SSH.
""",
    )
    for name, text in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
        _write(debian / name, text, 0o755)


def _dpkg_deb() -> str:
    found = shutil.which("dpkg-deb")
    if found is None:
        raise SystemExit("dpkg-deb not found; install it (Debian/Ubuntu: apt install dpkg)")
    return found


def build(wheelhouse: Path, arch: str, python: str, out: Path, compression: str = "xz") -> Path:
    """The .deb's path. xz makes the smallest package; "none" builds in seconds (tests)."""
    arch = normalise_arch(arch)
    house = Wheelhouse.load(wheelhouse)
    wheels = house.select(arch, (int(python.split(".")[0]), int(python.split(".")[1])))
    house.verify(wheels)
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"kitfleet-agent_{deb_version(house.version, python)}_{DEB_ARCH[arch]}.deb"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        stage(root, house, wheels, arch, python)
        control(root, house, arch, python)
        subprocess.run(
            [_dpkg_deb(), "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path, required=True)
    parser.add_argument(
        "--arch", action="append", choices=sorted(DEB_ARCH), help="repeatable; default every target's"
    )
    parser.add_argument(
        "--python",
        action="append",
        help="the target distribution's python3 X.Y (Debian 12: 3.11, Ubuntu 22.04: 3.10); "
        "repeatable; default every Python the wheelhouse has",
    )
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--compression", default="xz", choices=("xz", "gzip", "zstd", "none"))
    args = parser.parse_args(argv)
    targets = [
        describe_target(k).split(" CPython ") for k in sorted(Wheelhouse.load(args.wheelhouse).targets)
    ]
    for arch, python in targets:
        if (args.arch is None or arch in args.arch) and (args.python is None or python in args.python):
            print(build(args.wheelhouse, arch, python, args.out, args.compression))
    return 0


if __name__ == "__main__":
    sys.exit(main())
