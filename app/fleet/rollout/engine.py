"""The rollout engine: a plain async state machine driven step by step from the recorded state.

uploading → activating wave 0 (the canaries) → soaking → activating wave 1 → … → waiting (kits
that were away) → done; a wave over its failure threshold → rolling-back → failed; an abort →
rolling-back → aborted. Each step reads the record, calls the kits (ordinary upload, activate,
rollback and on-kit jobs, through `KitFlow`) and saves the record before the next one, so a
process killed at any point is continued by `async_run` in another from the phase it recorded.
"""

from __future__ import annotations

import asyncio
import time

from app.fleet.rollout.kit_flow import Event, KitFlow
from app.fleet.rollout.record import FINISHED, Rollout, failures_allowed

__all__ = ["Engine", "Event"]

BEAT_S = 5.0  # how often a running engine renews its lease (store.STALE_S is 30 s)


class Engine(KitFlow):
    """Drives one rollout's phases; the kit-level steps come from `KitFlow`."""

    # driving --------------------------------------------------------------------------

    async def async_run(self) -> Rollout:
        """Step until finished, paused, or only waiting for kits that are away."""
        r = self.rollout
        self.store.claim(r.rollout_id)
        beat = asyncio.create_task(self._beat())
        try:
            while r.phase not in FINISHED:
                if self.store.paused(r.rollout_id):
                    self.note(
                        "rollout.pause", f"paused in {self.where()}; `kitfleet rollout resume {r.rollout_id}`"
                    )
                    break
                if not await self.async_step():
                    break
        finally:
            beat.cancel()
            self.store.release(r.rollout_id)
        return r

    async def _beat(self) -> None:
        """Renew the runner's lease while checks run for minutes, so no `resume` joins in."""
        while True:
            await asyncio.sleep(BEAT_S)
            self.store.heartbeat(self.rollout.rollout_id)

    async def async_step(self) -> bool:
        """One phase's work; False when nothing more can happen now."""
        step = {
            "uploading": self._upload,
            "activating": self._activate,
            "soaking": self._soak,
            "waiting": self._wait,
            "rolling-back": self._roll_back,
        }[self.rollout.phase]
        progressed = await step()
        self.save()
        return progressed

    # phases ---------------------------------------------------------------------------

    async def _upload(self) -> bool:
        await asyncio.gather(*(self._send(k) for k in self.rollout.kits if not k.uploaded))
        self._enter("activating", 0)
        return True

    async def _activate(self) -> bool:
        r = self.rollout
        if not r.in_wave(r.wave):  # a wave the shares left empty (few kits): nothing to soak
            self._next_wave()
            return True
        wave = [k for k in r.in_wave(r.wave) if not k.settled and not k.activated]
        await asyncio.gather(*(self._switch_on(k) for k in wave))
        r.wave_started_at = time.time()
        r.phase = "soaking"
        return True

    async def _soak(self) -> bool:
        r = self.rollout
        if not await self._sleep_until((r.wave_started_at or 0) + r.soak_s):
            return False  # paused: the soak clock keeps its start
        soaking = [k for k in r.in_wave(r.wave) if k.state == "soaking"]
        await asyncio.gather(*(self._check(k) for k in soaking))
        failed = [k for k in r.in_wave(r.wave) if k.state == "failed"]
        allowed = failures_allowed(r.thresholds.max_failures, len(r.in_wave(r.wave)))
        if len(failed) > allowed:
            names = ", ".join(k.name for k in failed)
            r.reason = f"wave {r.wave}: {len(failed)} kit(s) failed ({names}), {allowed} allowed"
            self.note("rollout.stop", f"stopping: {r.reason}; rolling back", outcome="failed")
            r.phase = "rolling-back"
            return True
        await asyncio.gather(*(self._revert(k) for k in failed if k.activated))
        self._next_wave()
        return True

    def _next_wave(self) -> None:
        r = self.rollout
        if r.wave + 1 < r.wave_count:
            self._enter("activating", r.wave + 1)
        else:
            self._enter("waiting", r.wave)

    async def _wait(self) -> bool:
        """Bring along the kits that were away; done when none is left."""
        r = self.rollout
        behind = [k for k in r.kits if not k.settled]
        if behind:
            await asyncio.gather(*(self._catch_up(k) for k in behind))
        left = [k for k in r.kits if not k.settled]
        if not left:
            self._finish("done", "")
            return True
        if len(left) < len(behind):
            return True
        self.note(
            "rollout.wait",
            f"waiting for {', '.join(k.name for k in left)} (away); "
            f"`kitfleet rollout resume {r.rollout_id}` when they are back",
        )
        return False

    async def _roll_back(self) -> bool:
        r = self.rollout
        pending = [k for k in r.kits if k.activated and k.state != "rolled-back"]
        await asyncio.gather(*(self._revert(k) for k in pending))
        left = [k for k in r.kits if k.activated and k.state != "rolled-back"]
        if left:
            self.note("rollout.wait", f"still to roll back: {', '.join(k.name for k in left)} (away)")
            return False
        self._finish("aborted" if r.reason.startswith("aborted") else "failed", r.reason)
        return True

    def _enter(self, phase: str, wave: int) -> None:
        r = self.rollout
        r.phase, r.wave = phase, wave  # type: ignore[assignment]
        if phase == "activating":
            kits = r.in_wave(wave)
            label = "canaries" if wave == 0 else f"wave {wave}/{r.wave_count - 1}"
            self.note("rollout.phase", f"{label}: {', '.join(k.name for k in kits) or 'no kits'}")

    def _finish(self, phase: str, reason: str) -> None:
        r = self.rollout
        r.phase, r.finished_at = phase, time.time()  # type: ignore[assignment]
        for kit in r.kits:
            if not kit.activated and not kit.settled and phase != "done":
                kit.detail = (
                    f"never activated: the rollout stopped ({kit.detail})"
                    if kit.detail
                    else ("never activated: the rollout stopped")
                )
        counts = {s: sum(1 for k in r.kits if k.state == s) for s in ("passed", "failed", "rolled-back")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        self.note(
            f"rollout.{phase}",
            f"{phase}: {summary}" + (f" ({reason})" if reason else ""),
            outcome="ok" if phase == "done" else phase,
        )
