"""The stick's own files, beside the wheels: what a technician needs without the app.

    STICK/install.sh                        picks the kit's target, installs offline, starts the unit
    STICK/kitfleet-agent.service.in         the unit provisioning installs (paths filled by install.sh)
    STICK/kitfleet-agent-upgrade.{service,path}.in   root's half of an agent upgrade by bundle
    STICK/50-kitfleet-clock.rules           polkit: the service user may set the clock (set-clock)
    STICK/targets/<arch>-cp3XX/requirements.txt   that target's wheels, pinned with their sha256
    STICK/manifest.json, SHA256SUMS, *.whl  the wheelhouse `kitfleet provision --wheelhouse` reads

The wheels sit once at the top (a FAT stick has no links, and most are shared by several
targets); each target's folder names exactly which ones it installs, so pip on the kit installs
in hash-checking mode and refuses a damaged or missing wheel instead of resolving around it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from app.provision.layout import UNIT_NAME
from app.provision.service import (
    POLKIT_RULE_NAME,
    UPGRADE_PATH,
    UPGRADE_SERVICE,
    polkit_clock_rule,
    systemd_unit,
    upgrade_path_unit,
    upgrade_service_unit,
)

INSTALLER = Path(__file__).resolve().parent / "install.sh"


def requirements(files: dict[str, dict[str, Any]], names: list[str], requirement: str) -> str:
    """Every wheel of one target as `name==version --hash=sha256:...` (the project with its extra)."""
    project = requirement.split("[")[0].split("=")[0]
    lines = []
    for name in sorted(names):
        dist, version, _, _ = parse_wheel_filename(name)
        pin = requirement if dist == project else f"{dist}=={version}"
        lines.append(f"{pin} --hash=sha256:{files[name]['sha256']}\n")
    return "".join(lines)


def write_stick(out: Path, manifest: dict[str, Any]) -> None:
    shutil.copy2(INSTALLER, out / "install.sh")
    (out / "install.sh").chmod(0o755)
    (out / f"{UNIT_NAME}.in").write_text(systemd_unit("@AGENT@", "@DATA_DIR@"))
    (out / f"{UPGRADE_SERVICE}.in").write_text(upgrade_service_unit("@PREFIX@", "@DATA_DIR@"))
    (out / f"{UPGRADE_PATH}.in").write_text(upgrade_path_unit("@DATA_DIR@"))
    (out / POLKIT_RULE_NAME).write_text(polkit_clock_rule())
    targets = out / "targets"
    for key, names in manifest["targets"].items():
        (targets / key).mkdir(parents=True, exist_ok=True)
        text = requirements(manifest["files"], names, manifest["requirement"])
        (targets / key / "requirements.txt").write_text(text)
    for stale in targets.iterdir():
        if stale.name not in manifest["targets"]:
            shutil.rmtree(stale)
