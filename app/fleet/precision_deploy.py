"""`kitfleet deploy --choose-precision FP32.onnx INT8.onnx --kit …` without a rollout: install
every variant inactive, then let each kit measure them and serve the one it runs best."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.fleet.datasets import async_ensure, scan
from app.fleet.deploy import ProgressCallback, async_deploy, prepare_package
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.precision_choice import PrecisionDecision, Variant, async_choose_precision
from app.fleet.precision_energy import Preference
from app.fleet.service import Fleet

__all__ = ["KitChoice", "async_deploy_choosing", "variants_of"]


@dataclass(frozen=True)
class KitChoice:
    kit: Kit
    decision: PrecisionDecision | None
    error: str = ""


def variants_of(models: Sequence[Path]) -> list[tuple[Path, Variant]]:
    """Each file with the variant its manifest (beside it, or inferred) says it is."""
    found = []
    for model in models:
        manifest = prepare_package(model).manifest
        found.append((model, Variant(manifest.name, manifest.version, manifest.precision)))
    return found


async def async_deploy_choosing(
    fleet: Fleet,
    models: Sequence[Path],
    kits: list[Kit],
    eval_folder: Path | None = None,
    max_accuracy_loss: float = 1.0,
    progress: ProgressCallback | None = None,
    prefer: Preference = "speed",
) -> list[KitChoice]:
    """Install the variants everywhere (inactive), then choose (the fastest, or with
    `prefer="energy"` the thriftiest, within the tolerance) and activate one per kit."""
    if len(models) < 2:
        raise Error("--choose-precision needs two or more variants of the model, e.g. FP32.onnx INT8.onnx")
    found = await asyncio.to_thread(variants_of, models)
    variants = [v for _, v in found]
    installed = {k.device_id for k in kits}
    problems: dict[str, str] = {}
    for model, _ in found:
        for outcome in await async_deploy(fleet, model, kits, activate=False, progress=progress):
            if not outcome.ok:
                installed.discard(outcome.kit.device_id)
                problems.setdefault(outcome.kit.device_id, f"{model.name}: {outcome.message}")
    dataset = await asyncio.to_thread(scan, eval_folder) if eval_folder is not None else None

    async def choose(kit: Kit) -> KitChoice:
        if kit.device_id not in installed:
            return KitChoice(kit, None, problems.get(kit.device_id, "not installed"))
        try:
            if dataset is not None:
                await fleet.async_call(kit, lambda c: async_ensure(c, dataset))
            name = dataset.name if dataset is not None else None
            decision = await async_choose_precision(
                fleet, kit.device_id, variants, name, max_accuracy_loss, activate=True, prefer=prefer
            )
        except Error as exc:
            return KitChoice(kit, None, str(exc))
        return KitChoice(kit, decision)

    return list(await asyncio.gather(*(choose(kit) for kit in kits)))
