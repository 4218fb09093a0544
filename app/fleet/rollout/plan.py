"""Plan a rollout: the package, the kits in their waves (canaries first), the thresholds; then
record it in the inventory, which refuses a second live rollout of the same model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.wire import Manifest
from app.fleet.deploy import Package, prepare_package
from app.fleet.gates import async_gate_check
from app.fleet.inventory import Kit
from app.fleet.models import ModelPackageError, load_package, manifest_path
from app.fleet.precision_energy import Preference
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
    prefer: Preference = "speed"  # what the precision choice weighs within the tolerance
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
    variants = await _variants(plan, manifest) if plan.choose_precision else []
    refused = {
        k.name: "; ".join(reasons)
        for k in plan.kits
        if (reasons := await async_gate_check(fleet, k, manifest, plan.force)) and not plan.force
    }
    kits = [k for k in plan.kits if k.name not in refused]
    if not kits:
        raise RolloutError(
            "the manifest's hardware gates refuse every kit: "
            + "; ".join(f"{n}: {why}" for n, why in refused.items())
            + " (--force overrides, audited)"
        )
    canaries = _canaries(fleet, replace(plan, kits=kits))
    rest = [k for k in kits if k.device_id not in canaries]
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
        variants=[str(v.resolve()) for v in variants],
        prefer=plan.prefer,
        refused=refused,
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


async def _variants(plan: Plan, manifest: Manifest) -> list[Path]:
    """The other precisions of the model: those given, else the packages beside it whose
    manifests name the same model in another precision (digits-cnn-int8.onnx beside -fp32)."""
    given = list(plan.variants)
    if not given:
        for path in sorted(plan.model.resolve().parent.glob("*.onnx")):
            if path.resolve() == plan.model.resolve() or not manifest_path(path).exists():
                continue
            try:
                other = await asyncio.to_thread(load_package, path)
            except ModelPackageError:
                continue
            if other.name == manifest.name and other.precision != manifest.precision:
                given.append(path)
    for path in given:
        other = (await asyncio.to_thread(prepare_package, path)).manifest
        if other.name != manifest.name or other.version == manifest.version:
            raise RolloutError(
                f"--variant {path.name}: a variant is another version of {manifest.name} "
                f"(it is {other.name} {other.version})"
            )
    if not given:
        raise RolloutError(
            f"--choose-precision: no other precision of {manifest.name} beside {plan.model.name}; "
            "name one with --variant MODEL-int8.onnx"
        )
    return given
