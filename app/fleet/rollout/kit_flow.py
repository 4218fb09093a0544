"""A rollout's work on one kit: upload, choose a precision, activate, check after the soak,
roll back, or mark it away. Each step saves the record and is noted in the audit log; `Engine`
(engine.py) decides which kits take which step in which phase."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.fleet.datasets import LocalDataset, async_ensure, scan
from app.fleet.deploy import Package, async_deploy, prepare_package
from app.fleet.errors import Error, KitUnreachable
from app.fleet.precision_choice import Variant, async_choose_precision
from app.fleet.precision_energy import prefer
from app.fleet.rollout.infer_rate import INFER_AT_ACTIVATION, async_infer_counts
from app.fleet.rollout.kit_steps import async_activate, async_online, async_rollback, async_serving
from app.fleet.rollout.record import KitState, Rollout, RolloutError
from app.fleet.rollout.soak import async_check
from app.fleet.rollout.store import RolloutStore
from app.fleet.service import Fleet

__all__ = ["Event", "KitFlow"]

TICK_S = 0.5  # how often a soak looks at the pause flag


@dataclass(frozen=True)
class Event:
    rollout_id: str
    kit: str  # "" for the rollout as a whole
    text: str


class KitFlow:
    def __init__(
        self,
        fleet: Fleet,
        rollout: Rollout,
        package: Package | None = None,
        events: Callable[[Event], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.rollout = rollout
        self.store = RolloutStore(fleet.inventory)
        self._package = package
        self._packages: list[Package] = []
        self._dataset: LocalDataset | None = None
        self._events = events or (lambda _: None)

    def save(self) -> None:
        self.store.save(self.rollout)

    def where(self) -> str:
        r = self.rollout
        return f"{r.phase} wave {r.wave}" if r.phase in ("activating", "soaking") else r.phase

    def note(
        self, action: str, text: str, kit: KitState | None = None, outcome: str = "ok", **detail: Any
    ) -> None:
        """One step, to the app's audit log and to whoever follows the rollout."""
        r = self.rollout
        self.fleet.audit.record(
            action,
            f"{r.model} {r.version}",
            outcome,
            kit.device_id if kit else "",
            kit.name if kit else "",
            {"rollout": r.rollout_id, "phase": r.phase, "wave": r.wave, "text": text, **detail},
        )
        self._events(Event(r.rollout_id, kit.name if kit else "", text))

    # one kit --------------------------------------------------------------------------

    async def _send(self, kit: KitState) -> None:
        """Learn what the kit serves now (what a rollback restores), then upload, inactive."""
        try:
            if not kit.inspected:
                info = await async_serving(self.fleet, kit, self.rollout.model)
                kit.previous_version = info.active_version if info else None
                kit.inspected = True
        except KitUnreachable as exc:
            return self._away(kit, exc)
        target = self.fleet.inventory.get(kit.device_id)
        for package in await self.packages():  # the model, then its other precisions
            [outcome] = await async_deploy(
                self.fleet, package.model, [target], activate=False, package=package, force=self.rollout.force
            )
            if not outcome.ok:
                break
        if outcome.ok:
            kit.uploaded, kit.state, kit.detail = True, "uploaded", outcome.message
            versions = ", ".join(p.manifest.version for p in await self.packages())
            self.note("rollout.upload", f"uploaded {self.rollout.model} {versions} (inactive)", kit)
        elif not await async_online(self.fleet, kit):
            self._away(kit, outcome.message)
        else:
            kit.state, kit.detail = "failed", f"upload refused: {outcome.message}"
            self.note("rollout.upload", kit.detail, kit, outcome="failed")
        self.save()

    async def _switch_on(self, kit: KitState) -> None:
        if not kit.uploaded:
            await self._send(kit)
            if not kit.uploaded:
                return
        try:
            if self.rollout.choose_precision and "precision" not in kit.checks:
                await self._choose(kit)
            # the soak's infer error rate counts from here (infer_rate.py)
            kit.checks[INFER_AT_ACTIVATION] = await async_infer_counts(self.fleet, kit, self.rollout.model)
            info = await async_activate(self.fleet, kit, self.rollout.model)
        except KitUnreachable as exc:
            return self._away(kit, exc)
        except Error as exc:
            kit.state, kit.detail = "failed", f"not activated: {exc}"
            self.note("rollout.activate", kit.detail, kit, outcome="failed")
            return self.save()
        kit.activated, kit.activated_at, kit.state = True, time.time(), "soaking"
        kit.detail = f"serving {info.active_version} (was {kit.previous_version or 'none'}), soaking"
        self.note("rollout.activate", kit.detail, kit)
        self.save()

    async def _choose(self, kit: KitState) -> None:
        """Benchmark (and evaluate) each precision on the kit; it takes the one chosen."""
        r = self.rollout
        dataset = await self.dataset()
        if dataset is not None:
            target = self.fleet.inventory.get(kit.device_id)
            await self.fleet.async_call(target, lambda c: async_ensure(c, dataset))
        variants = [Variant(r.model, p.manifest.version, p.manifest.precision) for p in await self.packages()]
        named = dataset.name if dataset else None
        decision = await async_choose_precision(
            self.fleet,
            kit.device_id,
            variants,
            named,
            r.thresholds.max_accuracy_loss,
            prefer=prefer(r.prefer),
        )
        kit.version = decision.chosen.version
        kit.checks["precision"] = decision.chosen.precision
        kit.checks["precision_reason"] = decision.reason
        self.note("rollout.precision", f"takes {kit.version}: {decision.reason}", kit)
        self.save()

    async def _check(self, kit: KitState) -> None:
        try:
            verdict = await async_check(self.fleet, self.rollout, kit, await self.dataset())
        except KitUnreachable as exc:
            return self._away(kit, exc)
        except Error as exc:  # a refusal while checking is the kit failing its soak
            verdict_ok, reasons, figures = False, [str(exc)], {}
        else:
            verdict_ok, reasons, figures = verdict.ok, verdict.reasons or verdict.said, verdict.figures
        kit.checks = {**kit.checks, **figures}
        kit.state = "passed" if verdict_ok else "failed"
        kit.detail = "; ".join(reasons) if not verdict_ok else "passed: " + ("; ".join(reasons) or "serving")
        self.note("rollout.check", kit.detail, kit, outcome="ok" if verdict_ok else "failed", figures=figures)
        self.save()

    async def _catch_up(self, kit: KitState) -> None:
        """A kit that was away (or whose wave it missed): upload, activate, soak, check."""
        if not kit.activated:
            await self._switch_on(kit)
        elif kit.state == "offline-waiting":  # went away while soaking: back now?
            if not await async_online(self.fleet, kit):
                return
            kit.state, kit.detail = "soaking", "back; soaking"
        if kit.state == "soaking" and kit.activated_at:
            await self._soak_one(kit, kit.activated_at + self.rollout.soak_s)

    async def _soak_one(self, kit: KitState, until: float) -> None:
        if await self._sleep_until(until):
            await self._check(kit)
        if kit.state == "failed":
            await self._revert(kit)

    async def _revert(self, kit: KitState) -> None:
        try:
            said = await async_rollback(self.fleet, kit, self.rollout.model)
        except KitUnreachable as exc:
            return self._away(kit, exc)
        why = kit.detail if kit.state == "failed" else self.rollout.reason
        kit.state, kit.detail = "rolled-back", f"{said} ({why})" if why else said
        self.note("rollout.rollback", kit.detail, kit)
        self.save()

    def _away(self, kit: KitState, why: object) -> None:
        kit.state, kit.detail = "offline-waiting", f"away: {why}"
        self.note(
            "rollout.away",
            "away; the rollout goes on and picks it up when it is back",
            kit,
            outcome="no answer",
        )
        self.save()

    # helpers --------------------------------------------------------------------------

    async def _sleep_until(self, at: float) -> bool:
        """Wait (renewing the lease); False if paused meanwhile."""
        while (left := at - time.time()) > 0:
            if self.store.paused(self.rollout.rollout_id):
                return False
            await asyncio.sleep(min(TICK_S, left))
        return True

    async def packages(self) -> list[Package]:
        """The model's package (checked against the one the rollout started with), then its
        other precisions when the kits choose."""
        if not self._packages:
            path = Path(self.rollout.model_path)
            main = self._package
            if main is None:
                main = await asyncio.to_thread(prepare_package, path)
            if main.manifest.sha256 != self.rollout.sha256:
                raise RolloutError(
                    f"{path} changed since rollout {self.rollout.rollout_id} started (sha256 differs); "
                    "put the original back, or abort this rollout and start a new one"
                )
            others = [await asyncio.to_thread(prepare_package, Path(v)) for v in self.rollout.variants]
            self._packages = [main, *others]
        return self._packages

    async def dataset(self) -> LocalDataset | None:
        if self.rollout.eval_dataset and self._dataset is None:
            self._dataset = await asyncio.to_thread(scan, Path(self.rollout.eval_dataset))
        return self._dataset
