"""Start, resume, pause and abort rollouts, and say where each stands, for the CLI and the window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.fleet.rollout.engine import Engine, Event
from app.fleet.rollout.plan import Plan, async_create
from app.fleet.rollout.record import FINISHED, Rollout, RolloutError
from app.fleet.rollout.store import STALE_S, RolloutStore
from app.fleet.service import Fleet

__all__ = ["async_abort", "async_resume", "async_resume_waiting", "async_start", "pause", "status_lines"]

EventSink = Callable[[Event], None]


async def async_start(fleet: Fleet, plan: Plan, events: EventSink | None = None) -> Rollout:
    rollout, package = await async_create(fleet, plan)
    engine = Engine(fleet, rollout, package, events)
    r = rollout
    engine.note(
        "rollout.start",
        f"{r.model} {r.version} to {len(r.kits)} kit(s): canaries, then {r.wave_count - 1} wave(s); "
        f"soak {r.soak_s:g} s" + (f", eval on {r.eval_dataset}" if r.eval_dataset else ""),
        waves=r.waves,
        kits=[k.name for k in r.kits],
        thresholds=vars(r.thresholds),
        force=r.force,
        refused=r.refused,
    )
    for name, why in r.refused.items():
        said = f"{name} left out: it misses the model's gates ({why}); --force overrides"
        engine.note("rollout.refused", said)
    return await engine.async_run()


async def async_resume(fleet: Fleet, rollout_id: str, events: EventSink | None = None) -> Rollout:
    """Continue from the recorded phase (a paused rollout, a laptop restarted mid-way, kits back)."""
    store = RolloutStore(fleet.inventory)
    rollout = store.get(rollout_id)
    if rollout.phase in FINISHED:
        raise RolloutError(f"rollout {rollout.rollout_id} is {rollout.phase}; nothing to resume")
    store.claim(rollout.rollout_id)  # refuses while another live process runs it
    store.set_paused(rollout.rollout_id, False)
    engine = Engine(fleet, rollout, events=events)
    engine.note("rollout.resume", f"resumed in {engine.where()}")
    return await engine.async_run()


async def async_resume_waiting(fleet: Fleet, events: EventSink | None = None) -> list[Rollout]:
    """Pick up every rollout left waiting for kits that were away (or to roll them back), unless
    paused or run by a live process: what `kitfleet rollout resume` with no ID and a poll do."""
    store = RolloutStore(fleet.inventory)
    picked = []
    for rollout in store.all():
        waiting = rollout.phase in ("waiting", "rolling-back")
        if not waiting or store.paused(rollout.rollout_id):
            continue
        try:
            picked.append(await async_resume(fleet, rollout.rollout_id, events))
        except RolloutError:  # another process runs it: it will pick the kits up itself
            continue
    return picked


def pause(fleet: Fleet, rollout_id: str) -> Rollout:
    """Ask the running process to stop at its next step (it keeps the soak clock)."""
    store = RolloutStore(fleet.inventory)
    rollout = store.get(rollout_id)
    if rollout.phase in FINISHED:
        raise RolloutError(f"rollout {rollout.rollout_id} is {rollout.phase}; nothing to pause")
    store.set_paused(rollout.rollout_id, True)
    Engine(fleet, rollout).note("rollout.pause", "pause asked")
    return rollout


async def async_abort(fleet: Fleet, rollout_id: str, events: EventSink | None = None) -> Rollout:
    """Stop the rollout and roll back every kit it activated; the others are never activated."""
    store = RolloutStore(fleet.inventory)
    rollout = store.get(rollout_id)
    if rollout.phase in FINISHED:
        raise RolloutError(f"rollout {rollout.rollout_id} is already {rollout.phase}")
    store.set_paused(rollout.rollout_id, True)  # a running process stops at its next step
    await _take_over(store, rollout.rollout_id)
    rollout = store.get(rollout.rollout_id)  # as the stopped process left it
    rollout.phase, rollout.reason = "rolling-back", "aborted by the technician"
    store.set_paused(rollout.rollout_id, False)
    engine = Engine(fleet, rollout, events=events)
    engine.note("rollout.abort", f"aborted in {engine.where()}; rolling back what it activated")
    engine.save()
    return await engine.async_run()


async def _take_over(store: RolloutStore, rollout_id: str) -> None:
    deadline = time.monotonic() + STALE_S * 4
    while True:
        try:
            store.claim(rollout_id)
            return
        except RolloutError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def status_lines(rollout: Rollout) -> list[str]:
    r = rollout
    where = f"{r.phase} wave {r.wave}" if r.phase in ("activating", "soaking") else r.phase
    lines = [
        f"{r.rollout_id}  {r.model} {r.version}  {where}" + (f"  ({r.reason})" if r.reason else ""),
        f"  waves: canaries, then {', '.join(f'{w:.0%}' for w in r.waves)} of the rest; soak {r.soak_s:g} s; "
        f"max failures {r.thresholds.max_failures}",
    ]
    width = max((len(k.name) for k in r.kits), default=4)
    for k in sorted(r.kits, key=lambda k: (k.wave, k.name)):
        wave = "canary" if k.wave == 0 else f"wave {k.wave}"
        lines.append(f"  {wave:<7} {k.name:<{width}}  {k.state:<15} {k.detail}")
    return lines
