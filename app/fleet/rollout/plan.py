"""Plan a rollout: the package, the kits in their waves (canaries first), the thresholds; then
record it in the inventory, which refuses a second live rollout of the same model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.fleet.deploy import Package, prepare_package
from app.fleet.inventory import Kit
from app.fleet.rollout.record import KitState, Rollout, RolloutError, Thresholds, new_rollout_id, wave_sizes
from app.fleet.rollout.store import RolloutStore
from app.fleet.service import Fleet

__all__ = ["Plan", "async_create"]


@dataclass(frozen=True)
class Plan:
    model: Path
    kits: list[Kit]
    canaries: list[str] = field(default_factory=list)  # kit names or IDs; empty: the first `canary_count`
    canary_count: int = 1
    waves: tuple[float, ...] = (1.0,)
    thresholds: Thresholds = field(default_factory=Thresholds)
    soak_s: float = 60.0
    eval_dataset: Path | None = None
    choose_precision: bool = False
    variants: tuple[Path, ...] = ()
    force: bool = False


async def async_create(fleet: Fleet, plan: Plan) -> tuple[Rollout, Package]:
    """The rollout recorded (phase `uploading`) and its package, ready for the engine."""
    if not plan.kits:
        raise RolloutError("name the kits to roll out to: --kit KIT or --tag TAG (repeatable)")
    if plan.soak_s < 0:
        raise RolloutError("--soak must be 0 seconds or more")
    if plan.eval_dataset is not None and not plan.eval_dataset.is_dir():
        raise RolloutError(f"--eval: {plan.eval_dataset} is not a folder of labelled images on this computer")
    package = await asyncio.to_thread(prepare_package, plan.model)
    manifest = package.manifest
    canaries = _canaries(fleet, plan)
    rest = [k for k in plan.kits if k.device_id not in canaries]
    states = [
        KitState(k.device_id, k.name, 0, version=manifest.version)
        for k in plan.kits
        if k.device_id in canaries
    ]
    start = 0
    for wave, size in enumerate(wave_sizes(len(rest), list(plan.waves)), start=1):
        states += [
            KitState(k.device_id, k.name, wave, version=manifest.version) for k in rest[start : start + size]
        ]
        start += size
    rollout = Rollout(
        rollout_id=new_rollout_id(),
        model=manifest.name,
        version=manifest.version,
        sha256=manifest.sha256,
        model_path=str(plan.model.resolve()),
        kits=states,
        waves=list(plan.waves),
        thresholds=plan.thresholds,
        soak_s=plan.soak_s,
        eval_dataset=str(plan.eval_dataset.resolve()) if plan.eval_dataset else None,
        choose_precision=plan.choose_precision,
        variants=[str(v.resolve()) for v in plan.variants],
        force=plan.force,
        created_at=time.time(),
    )
    RolloutStore(fleet.inventory).create(rollout)
    return rollout, package


def _canaries(fleet: Fleet, plan: Plan) -> set[str]:
    targets = {k.device_id for k in plan.kits}
    if not plan.canaries:
        if not 1 <= plan.canary_count <= len(plan.kits):
            raise RolloutError(f"--canary {plan.canary_count}: choose 1 to {len(plan.kits)} of the kits")
        return {k.device_id for k in plan.kits[: plan.canary_count]}
    chosen = {fleet.inventory.resolve(ref).device_id for ref in plan.canaries}
    outside = [fleet.inventory.get(d).name for d in chosen - targets]
    if outside:
        raise RolloutError(f"--canary {', '.join(outside)}: not among the kits of this rollout")
    return chosen
