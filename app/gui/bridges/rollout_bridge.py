"""Rollouts for the window (issue 21): start, follow, pause, resume and abort, on the bridge's loop.

The engine (`app.fleet.rollout`) runs on the loop thread; each step it reports is sent to the
window as a `step`, with the rollout as the inventory now records it (`changed`), so the
Rollouts panel follows phases and per-kit states live without reading the inventory itself.

Kits that were away pick their rollout up when they return, without a command: each status
poll tells `kits_polled` which kits answered, and a kit that answers again (it did not at the
poll before, or the window just opened) while a rollout waits for it resumes the waiting
rollouts (`async_resume_waiting`, as `kitfleet rollout resume` with no ID does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.fleet.deploy import prepare_package
from app.fleet.gates import refused_kits
from app.fleet.rollout import (
    Event,
    Plan,
    Rollout,
    RolloutStore,
    async_abort,
    async_resume,
    async_resume_waiting,
    async_start,
    pause,
)
from app.gui.bridges.base import BridgeHost, SubBridge

__all__ = ["RolloutBridge"]

FOLLOW_S = 1.0
Runner = Callable[[Callable[[Event], None]], Awaitable[Rollout | list[Rollout]]]
WAITING = ("waiting", "rolling-back")


class RolloutBridge(SubBridge):
    step = Signal(object)  # Event: one step, in words
    changed = Signal(object)  # Rollout: as the inventory records it after that step
    listed = Signal(object)  # list[Rollout], newest first
    ended = Signal(object)  # Rollout: its engine stopped (finished, paused, or waiting for kits)
    gates = Signal(object, object)  # (Path, {device ID: reasons}): kits the model's gates refuse

    def __init__(self, host: BridgeHost, parent: QObject | None = None) -> None:
        super().__init__(host, parent)
        self._online: set[str] = set()  # kits that answered the last poll (loop thread)
        self._picking = False  # a pick-up of waiting rollouts is running (loop thread)
        self._back: set[str] = set()  # kits back while it ran

    # called on the GUI thread ---------------------------------------------------------

    def load(self) -> None:
        self._submit("rollouts", self._async_list())

    def start(self, plan: Plan) -> None:
        self._submit("rollout", self._async_drive(lambda sink: async_start(self._host.fleet, plan, sink)))

    def resume(self, rollout_id: str) -> None:
        self._submit(
            "rollout resume", self._async_drive(lambda sink: async_resume(self._host.fleet, rollout_id, sink))
        )

    def abort(self, rollout_id: str) -> None:
        self._submit(
            "rollout abort", self._async_drive(lambda sink: async_abort(self._host.fleet, rollout_id, sink))
        )

    def check_gates(self, model: Path) -> None:
        self._submit("rollout check", self._async_gates(model))

    def pause(self, rollout_id: str) -> None:
        self._submit("rollout pause", self._async_pause(rollout_id))

    # on the loop thread -----------------------------------------------------------------

    def kits_polled(self, polled: Iterable[str], online: Iterable[str]) -> None:
        """After each status poll (of `polled`, `online` of them answering): resume the rollouts
        waiting for a kit that is back."""
        now = set(online)
        back = now - self._online
        self._online = (self._online - set(polled)) | now
        if back:
            self._pick_up(back)

    def _pick_up(self, back: set[str]) -> None:
        if self._picking:  # once the running pick-up ends, the kits back meanwhile get theirs
            self._back |= back
            return
        store = RolloutStore(self._host.fleet.inventory)
        if any(self._waits_for(store, r, back) for r in store.all()):
            self._picking = True
            self._host.submit("rollout pick-up", self._async_pick_up())

    @staticmethod
    def _waits_for(store: RolloutStore, rollout: Rollout, back: set[str]) -> bool:
        if rollout.phase not in WAITING or store.paused(rollout.rollout_id):
            return False
        if rollout.phase == "rolling-back":  # what the engine still has to roll back
            behind = [k for k in rollout.kits if k.activated and k.state != "rolled-back"]
        else:
            behind = [k for k in rollout.kits if not k.settled]
        return any(k.device_id in back for k in behind)

    async def _async_pick_up(self) -> None:
        try:
            await self._async_drive(lambda sink: async_resume_waiting(self._host.fleet, sink))
        finally:
            self._picking = False
            back, self._back = self._back & self._online, set()
            if back:
                self._pick_up(back)

    async def _async_list(self) -> None:
        self.listed.emit(RolloutStore(self._host.fleet.inventory).all())

    async def _async_drive(self, run: Runner) -> None:
        store = RolloutStore(self._host.fleet.inventory)
        followed: set[str] = set()

        def sink(event: Event) -> None:  # called by the engine on this (the loop) thread
            followed.add(event.rollout_id)
            self.step.emit(event)
            self.changed.emit(store.get(event.rollout_id))

        watcher = asyncio.ensure_future(self._async_follow(store, followed))
        try:
            ran = await run(sink)
        finally:
            watcher.cancel()
        for rollout in ran if isinstance(ran, list) else [ran]:
            self.changed.emit(rollout)
            self.ended.emit(rollout)
        self.listed.emit(store.all())

    async def _async_follow(self, store: RolloutStore, followed: set[str]) -> None:
        """The engine saves between its notes too (a soak begins, a kit's checks land): show
        what the inventory holds every `FOLLOW_S` while a rollout runs, when it moved."""
        last: dict[str, dict[str, object]] = {}
        while True:
            await asyncio.sleep(FOLLOW_S)
            for rollout_id in list(followed):
                rollout = store.get(rollout_id)
                if last.get(rollout_id) != (now := rollout.to_json()):
                    last[rollout_id] = now
                    self.changed.emit(rollout)

    async def _async_gates(self, model: Path) -> None:
        package = await asyncio.to_thread(prepare_package, model)  # hashes the file
        inventory = self._host.fleet.inventory
        self.gates.emit(model, refused_kits(inventory, inventory.kits(), package.manifest.requires))

    async def _async_pause(self, rollout_id: str) -> None:
        self.changed.emit(pause(self._host.fleet, rollout_id))
