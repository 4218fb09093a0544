"""`bundle create --agent-upgrade WHEELHOUSE`: the wheelhouse rides in the bundle for the kit to
install itself (agent/bundles/upgrade.py). Every wheel is checked against the wheelhouse's own
manifest here, and the signed bundle manifest then carries each one's sha256 and size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.toolkit.hashing import sha256_file
from agent.toolkit.wheelhouse import MANIFEST, HouseManifest
from app.fleet.bundles.errors import BundleError

__all__ = ["upgrade_action"]


def upgrade_action(root: Path, files: list[tuple[str, Path]]) -> dict[str, Any]:
    """The bundle's agent_upgrade action; adds the wheels to `files` as `agent/<name>`."""
    try:
        house = HouseManifest.parse(json.loads((root / MANIFEST).read_text()))
    except FileNotFoundError:
        raise BundleError(
            f"{root} is not a wheelhouse ({MANIFEST} missing): build one on a machine with internet "
            "(README, Provisioning and packaging), the same one `kitfleet provision --wheelhouse` takes"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{root / MANIFEST}: {exc}; build the wheelhouse again") from exc
    for name, info in sorted(house.files.items()):
        path = root / name
        try:
            good = path.stat().st_size == info["size"] and sha256_file(path) == info["sha256"]
        except OSError as exc:
            raise BundleError(f"{path}: {exc}; copy the wheelhouse again") from exc
        if not good:
            raise BundleError(f"{path} does not match its sha256 in {MANIFEST}; copy the wheelhouse again")
        files.append((f"agent/{name}", path))
    wheelhouse = {
        "format": 1,
        "project": house.project,
        "version": house.version,
        "requirement": house.requirement,
        "glibc": house.glibc,
        "targets": house.targets,
        "files": house.files,
    }
    return {"type": "agent_upgrade", "version": house.version, "wheelhouse": wheelhouse}
