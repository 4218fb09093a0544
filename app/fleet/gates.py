"""Hardware gates on the laptop: which kits a manifest's `requires` refuses, from last-known facts.

The same pure checker the kit runs (`agent.toolkit.gates`); the kit checks again with live facts.
Deploy, the rollout engine and the window's dialogs all ask here.
"""

from __future__ import annotations

import contextlib

from agent.toolkit.gates import describe, unmet
from agent.wire import Manifest, Requirements
from app.fleet.errors import Error
from app.fleet.inventory import Inventory, Kit
from app.fleet.service import Fleet

__all__ = ["async_gate_check", "describe", "kit_unmet", "refused_kits"]

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


async def async_gate_check(fleet: Fleet, kit: Kit, manifest: Manifest, force: bool) -> list[str]:
    """`kit_unmet` for a deploy, written to the app's audit log when it refuses or is forced past.
    A kit whose facts the app has never read (adopted, not yet polled) is asked for them first."""
    requires = manifest.requires
    if requires is None or not requires.given():
        return []
    if fleet.inventory.last_facts(kit.device_id) is None:
        # saved in the inventory; a kit away has its gates read as unknown, so unmet, saying so
        with contextlib.suppress(Error):
            await fleet.async_facts(kit)
    reasons = kit_unmet(fleet.inventory, kit, requires)
    if reasons:
        fleet.audit.record(
            GATES_ACTION,
            f"{manifest.name} {manifest.version}",
            "forced" if force else "refused",
            kit.device_id,
            kit.name,
            {"unmet": reasons, "requires": describe(requires)},
        )
    return reasons
