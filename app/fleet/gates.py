"""Hardware gates on the laptop: which kits a manifest's `requires` refuses, from last-known facts.

The same pure checker the kit runs (`agent.toolkit.gates`); the kit checks again with live facts.
Deploy, the rollout engine and the window's dialogs all ask here.
"""

from __future__ import annotations

from agent.toolkit.gates import describe, unmet
from agent.wire import Manifest, Requirements
from app.fleet.inventory import Inventory, Kit
from app.fleet.service import Fleet

__all__ = ["describe", "gate_check", "kit_unmet", "refused_kits"]

GATES_ACTION = "model.gates"


def kit_unmet(inventory: Inventory, kit: Kit, requires: Requirements | None) -> list[str]:
    """What `kit` lacks of `requires`, by its last-known facts (none known: every gate is unmet)."""
    if requires is None or not requires.given():
        return []
    known = inventory.last_facts(kit.device_id)
    return unmet(requires, known[0] if known else None)


def refused_kits(
    inventory: Inventory, kits: list[Kit], requires: Requirements | None
) -> dict[str, list[str]]:
    """device ID -> reasons, for each of `kits` the gates refuse; kits that pass are left out."""
    return {kit.device_id: reasons for kit in kits if (reasons := kit_unmet(inventory, kit, requires))}


def gate_check(fleet: Fleet, kit: Kit, manifest: Manifest, force: bool) -> list[str]:
    """`kit_unmet` for a deploy, written to the app's audit log when it refuses or is forced past."""
    reasons = kit_unmet(fleet.inventory, kit, manifest.requires)
    if reasons:
        fleet.audit.record(
            GATES_ACTION,
            f"{manifest.name} {manifest.version}",
            "forced" if force else "refused",
            kit.device_id,
            kit.name,
            {"unmet": reasons, "requires": describe(manifest.requires)},
        )
    return reasons
