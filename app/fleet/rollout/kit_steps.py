"""A rollout's ordinary calls to one kit: what serves there now, activate, and roll back to
what served before. Each is safe to repeat after the laptop's process died half-way: it reads
the kit's state first and does only what is still missing."""

from __future__ import annotations

from agent.wire import ModelInfo
from app.fleet.errors import KitUnreachable
from app.fleet.rollout.record import KitState
from app.fleet.service import Fleet

__all__ = ["async_activate", "async_online", "async_rollback", "async_serving"]


async def async_serving(fleet: Fleet, kit: KitState, model: str) -> ModelInfo | None:
    """The kit's record of `model`, or None when the kit has no version of it."""
    models = await fleet.async_call(fleet.inventory.get(kit.device_id), lambda c: c.models())
    return next((m for m in models if m.name == model), None)


async def async_online(fleet: Fleet, kit: KitState) -> bool:
    """Whether the kit answers at all (told apart from a kit that answered with a refusal)."""
    try:
        await fleet.async_call(fleet.inventory.get(kit.device_id), lambda c: c.health(), relocate=False)
    except KitUnreachable:
        return False
    return True


async def async_activate(fleet: Fleet, kit: KitState, model: str) -> ModelInfo:
    return await fleet.async_call(
        fleet.inventory.get(kit.device_id), lambda c: c.activate(model, kit.version)
    )


async def async_rollback(fleet: Fleet, kit: KitState, model: str) -> str:
    """Make the version that served before the rollout serve again; what was done, in words.

    The kit's own rollback when its previous version is the one to restore (its log says
    rollback), else activate that version; a kit that had no version of the model before has the
    new one deleted, as it was."""
    info = await async_serving(fleet, kit, model)
    target = fleet.inventory.get(kit.device_id)
    if info is None or info.active_version == kit.previous_version:
        return f"already serving {kit.previous_version or 'no version'}"
    if kit.previous_version is None:
        await fleet.async_call(target, lambda c: c.delete_version(model, kit.version, force=True))
        return f"{model} {kit.version} removed (the kit had no version of it before)"
    if info.active_version == kit.version and info.previous_version == kit.previous_version:
        await fleet.async_call(target, lambda c: c.rollback(model))
    else:
        previous = kit.previous_version
        await fleet.async_call(target, lambda c: c.activate(model, previous))
    return f"back to {model} {kit.previous_version}"
