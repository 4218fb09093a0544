"""Each kit's models as the app last knew them, kept up to date by what the app itself did.

Polls refresh a kit's last-known state (app.fleet.snapshot); but a kit switched off right after
a deploy, an activation, a rollback or a delete would then be shown, while away, with the
models it had before. So the moment a kit confirms such a change, it is written here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.wire import ModelInfo
from app.fleet.snapshot import KitSnapshot, Snapshots

__all__ = ["KnownModels"]

Change = Callable[[list[ModelInfo]], list[ModelInfo]]


class KnownModels:
    """Writes into the kit's last-known snapshot; share the `Snapshots` the views read."""

    def __init__(self, snapshots: Snapshots) -> None:
        self._snapshots = snapshots

    def confirmed(self, device_id: str, info: ModelInfo) -> None:
        """A deploy, activation or rollback the kit confirmed: `info` is the model as it is now."""
        self._change(device_id, lambda models: [m for m in models if m.name != info.name] + [info])

    def deleted(self, device_id: str, name: str, version: str) -> None:
        """A version the kit confirmed deleting (the serving one too, when forced)."""

        def without(models: list[ModelInfo]) -> list[ModelInfo]:
            return [kept for m in models if (kept := _without(m, name, version)) is not None]

        self._change(device_id, without)

    def listed(self, device_id: str, models: list[ModelInfo]) -> None:
        """The whole list, as the kit just gave it."""
        self._change(device_id, lambda _: models)

    def of(self, device_id: str) -> tuple[list[ModelInfo], float] | None:
        """The last-known models and when the kit last answered a poll, if ever it did."""
        snapshot = self._snapshots.get(device_id)
        return None if snapshot is None else (snapshot.models, snapshot.taken_at)

    def _change(self, device_id: str, change: Change) -> None:
        old = self._snapshots.get(device_id)
        # The rest of an old snapshot keeps its time: only the models are newer than it says.
        snapshot = (
            old.model_copy(update={"models": _sorted(change(old.models))})
            if old
            else KitSnapshot(device_id=device_id, taken_at=time.time(), models=_sorted(change([])))
        )
        self._snapshots.save_many([snapshot])


def _without(model: ModelInfo, name: str, version: str) -> ModelInfo | None:
    if model.name != name:
        return model
    versions = [v for v in model.versions if v.version != version]
    if not versions:
        return None
    return model.model_copy(
        update={
            "versions": versions,
            "active_version": None if model.active_version == version else model.active_version,
            "previous_version": None if model.previous_version == version else model.previous_version,
        }
    )


def _sorted(models: list[ModelInfo]) -> list[ModelInfo]:
    return sorted(models, key=lambda m: m.name)
