"""The kit's own check of a manifest's hardware gates, with facts read now (not the app's copy)."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.errors import Conflict
from agent.facts import collect_family
from agent.toolkit.gates import unmet
from agent.wire import FactFamilies, Manifest

__all__ = ["check_gates", "live_unmet"]

log = logging.getLogger(__name__)

# Which fact families each requirement reads: only those are collected.
_FAMILIES = {
    "arch": "cpu",
    "cpu_features": "cpu",
    "min_memory_mb": "memory",
    "min_free_disk_mb": "disks",
    "providers": "runtime",
    "min_onnxruntime": "runtime",
}


def live_unmet(manifest: Manifest, data_dir: Path) -> list[str]:
    """The manifest's requirements this kit does not meet now, one reason each."""
    requires = manifest.requires
    if requires is None:
        return []
    wanted = {_FAMILIES[key] for key, value in requires.model_dump().items() if value is not None}
    families = FactFamilies.model_validate({name: collect_family(name, data_dir) for name in sorted(wanted)})
    return unmet(requires, families)


def check_gates(manifest: Manifest, data_dir: Path, force: bool) -> list[str]:
    """Refuse a manifest whose requirements this kit does not meet, unless forced; return what was
    forced past (the audit records it)."""
    reasons = live_unmet(manifest, data_dir)
    if reasons and not force:
        raise Conflict(
            "requirements_not_met",
            f"{manifest.name} {manifest.version} needs what this kit lacks: {'; '.join(reasons)}",
            "deploy it to kits that meet the manifest's `requires`, or force it past the gates "
            "(kitfleet deploy --force; the override is audited)",
        )
    if reasons:
        log.warning("%s %s installed past its gates (forced): %s", manifest.name, manifest.version, reasons)
    return reasons
