"""Which precision a kit should run (issue 21): benchmark each variant on the kit itself (and
evaluate it when a labelled dataset is named), then take the fastest within an accuracy tolerance,
or with `prefer="energy"` the one using the fewest joules per 1,000 inferences (precision_energy.py).

The variants are versions of one model already installed on the kit, inactive. Each is measured
by a short `benchmark` job, one after the other so they never share the CPU; FP16 is only tried
where one of the kit's execution providers favours it. The decision, and why, goes to the
inventory (`precision_store`) and the app's audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from agent.wire import JobEnergy, JobInfo, JobRequest, Precision
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.jobs import async_submit, async_watch
from app.fleet.precision_decide import PrecisionDecision, Variant, VariantMeasure, decide
from app.fleet.precision_energy import Preference, energy_basis
from app.fleet.precision_store import PrecisionChoices
from app.fleet.service import Fleet

__all__ = [
    "BENCH_ROUNDS",
    "BENCH_RUNS",
    "PrecisionDecision",
    "Variant",
    "VariantMeasure",
    "async_choose_precision",
    "async_measure",
    "decide",
    "favours_fp16",
]

BENCH_RUNS = 100
BENCH_ROUNDS = 3
BENCH_WARMUP = 5
CHOICE_ACTION = "model.precision"


async def async_choose_precision(
    fleet: Fleet,
    kit_id: str,
    variants: Sequence[Variant | tuple[str, str, str]],
    eval_dataset: str | None = None,
    max_accuracy_loss: float = 1.0,
    *,
    activate: bool = False,
    runs: int = BENCH_RUNS,
    rounds: int = BENCH_ROUNDS,
    prefer: Preference = "speed",
) -> PrecisionDecision:
    """Measure each variant on the kit, choose, record (and with `activate`, serve the choice).

    `max_accuracy_loss` is in points of top-1 accuracy against the FP32 variant (the most
    accurate one when there is no FP32). Each variant is benchmarked `rounds` times, in
    alternating order, and its best round counts: whatever else loads the kit only slows a
    round down, so the best is the nearest to what the hardware does (its energy too: the
    round with the fewest joules). `prefer`: "speed" or "energy" within the tolerance."""
    chosen_from = _variants(variants)
    kit = fleet.inventory.get(kit_id)
    fp16_ok = favours_fp16(fleet, kit)
    skipped = "no execution provider on this kit favours FP16"
    tried = [v for v in chosen_from if v.precision != "fp16" or fp16_ok]
    best = await _best_of(fleet, kit, tried, eval_dataset, runs, max(1, rounds))
    measures = tuple(best.get(v) or VariantMeasure(v, skipped=skipped) for v in chosen_from)
    decision = decide(kit_id, measures, max_accuracy_loss, eval_dataset is not None, prefer)
    if activate:
        await fleet.async_call(kit, lambda c: c.activate(decision.chosen.name, decision.chosen.version))
    PrecisionChoices(fleet.inventory).record(decision.stored())
    fleet.audit.record(
        CHOICE_ACTION,
        f"{decision.model} {decision.chosen.version}",
        "activated" if activate else "chosen",
        kit.device_id,
        kit.name,
        {"precision": decision.chosen.precision, "reason": decision.reason, "prefer": prefer},
    )
    return decision


async def _best_of(
    fleet: Fleet, kit: Kit, variants: list[Variant], eval_dataset: str | None, runs: int, rounds: int
) -> dict[Variant, VariantMeasure]:
    """Each variant's best round (its accuracy from the first: evaluation is deterministic)."""
    best: dict[Variant, VariantMeasure] = {}
    for n in range(rounds):
        for variant in variants if n % 2 == 0 else list(reversed(variants)):
            if best.get(variant, VariantMeasure(variant)).skipped:
                continue  # a variant that failed once is out
            first = variant not in best
            measured = await async_measure(fleet, kit, variant, eval_dataset if first else None, runs)
            best[variant] = measured if first else _better(best[variant], measured)
    return best


def _better(kept: VariantMeasure, new: VariantMeasure) -> VariantMeasure:
    """The faster round's speed and the thriftier round's energy."""
    if new.skipped:
        return kept
    fast = new if (new.throughput_per_s or 0.0) > (kept.throughput_per_s or 0.0) else kept
    joules = [m for m in (kept, new) if m.joules_per_1000 is not None]
    thrifty = min(joules, key=lambda m: m.joules_per_1000 or 0.0) if joules else kept
    return replace(
        kept,
        throughput_per_s=fast.throughput_per_s,
        p50_ms=fast.p50_ms,
        joules_per_1000=thrifty.joules_per_1000,
        energy_basis=thrifty.energy_basis,
    )


def favours_fp16(fleet: Fleet, kit: Kit) -> bool:
    """Whether one of the kit's execution providers runs FP16 fastest, by its last-known facts."""
    known = fleet.inventory.last_facts(kit.device_id)
    if known is None:
        return False
    return any(p.precision == "fp16" for p in known[0].precision_by_provider())


def _variants(variants: Sequence[Variant | tuple[str, str, str]]) -> list[Variant]:
    out = [v if isinstance(v, Variant) else Variant(v[0], v[1], _precision(v[2])) for v in variants]
    if len(out) < 2:
        raise Error("choosing a precision needs at least two variants of the model")
    if len({v.name for v in out}) != 1:
        raise Error(
            f"the variants must be versions of one model, not {', '.join(sorted({v.name for v in out}))}"
        )
    if len({v.version for v in out}) != len(out):
        raise Error("each variant must be a different version of the model")
    return out


def _precision(text: str) -> Precision:
    found = _PRECISIONS.get(text.lower())
    if found is None:
        raise Error(f"{text!r} is not a precision: use fp32, fp16 or int8")
    return found


_PRECISIONS: dict[str, Precision] = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}


async def async_measure(
    fleet: Fleet, kit: Kit, variant: Variant, eval_dataset: str | None = None, runs: int = BENCH_RUNS
) -> VariantMeasure:
    """One variant's batch-1 throughput from a `benchmark` job on the kit (and its top-1 accuracy
    from an `evaluate` job on `eval_dataset`, a dataset already on the kit)."""
    model = {"model": variant.name, "version": variant.version}
    bench = await _run_job(
        fleet, kit, "benchmark", {**model, "batch_sizes": [1], "runs": runs, "warmup": BENCH_WARMUP}
    )
    if bench.state != "done" or not bench.result:
        return VariantMeasure(variant, skipped=f"benchmark {bench.state}: {bench.error or 'no result'}")
    row = next((r for r in bench.result.get("rows", []) if "throughput_per_s" in r), None)
    if row is None:
        return VariantMeasure(variant, skipped="the benchmark measured no batch-1 row")
    accuracy: float | None = None
    if eval_dataset is not None:
        evaluated = await _run_job(fleet, kit, "evaluate", {**model, "dataset": eval_dataset})
        if evaluated.state != "done" or not evaluated.result:
            return VariantMeasure(
                variant, skipped=f"evaluate {evaluated.state}: {evaluated.error or 'no result'}"
            )
        value = evaluated.result.get("top1_accuracy")
        accuracy = float(value) if isinstance(value, (int, float)) else None
    joules = row.get("joules_per_1000_inferences")
    energy = JobEnergy.of_result(bench.result)
    return VariantMeasure(
        variant,
        float(row["throughput_per_s"]),
        float(row["p50_ms"]),
        accuracy,
        joules_per_1000=float(joules) if isinstance(joules, (int, float)) else None,
        energy_basis=energy_basis(energy.source, energy.note) if energy else "",
    )


async def _run_job(fleet: Fleet, kit: Kit, kind: str, params: dict[str, object]) -> JobInfo:
    request = JobRequest.model_validate({"kind": kind, "params": params, "timeout_s": 900})
    [outcome] = await async_submit(fleet, [kit], request)
    if not outcome.ok or outcome.job is None:
        raise Error(f"{kit.name}: the {kind} job was not queued: {outcome.message}")
    [info] = await async_watch(fleet, kit, [outcome.job.job_id], lambda _kit, _info: None, interval=0.2)
    return info
