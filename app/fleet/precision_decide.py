"""The precision rule on its own (issue 21, issue 24): from each variant's figures measured on a
kit, the fastest within the accuracy tolerance of the baseline (FP32, or the most accurate), or
with `prefer="energy"` the one using the fewest joules per 1,000 inferences (precision_energy.py),
and a sentence naming the numbers it went by."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from agent.wire import Precision
from app.fleet.errors import Error
from app.fleet.precision_energy import Preference, by_energy
from app.fleet.precision_store import StoredChoice

__all__ = ["PrecisionDecision", "Variant", "VariantMeasure", "decide"]


@dataclass(frozen=True)
class Variant:
    name: str
    version: str
    precision: Precision


@dataclass(frozen=True)
class VariantMeasure:
    variant: Variant
    throughput_per_s: float | None = None  # batch 1, from the kit's benchmark job
    p50_ms: float | None = None
    accuracy: float | None = None  # top-1, 0-1, from the kit's evaluate job when asked
    skipped: str = ""  # why it was not measured or failed, in words
    joules_per_1000: float | None = None  # batch 1, the benchmark's timed runs
    energy_basis: str = ""  # "measured (rapl)", "estimated from CPU time × 15 W TDP"


@dataclass(frozen=True)
class PrecisionDecision:
    kit_id: str
    model: str
    chosen: Variant
    reason: str
    measures: tuple[VariantMeasure, ...] = field(default=())
    decided_at: float = 0.0

    def stored(self) -> StoredChoice:
        return StoredChoice(
            self.kit_id,
            self.model,
            self.chosen.version,
            self.chosen.precision,
            self.reason,
            [asdict(m) for m in self.measures],
            self.decided_at,
        )


def decide(
    kit_id: str,
    measures: tuple[VariantMeasure, ...],
    max_accuracy_loss: float,
    evaluated: bool,
    prefer: Preference = "speed",
) -> PrecisionDecision:
    """The fastest measured variant within the accuracy tolerance (with `prefer="energy"`, the
    one using the least energy), and a sentence saying why."""
    measured = [m for m in measures if m.throughput_per_s is not None and not m.skipped]
    if not measured:
        why = "; ".join(f"{m.variant.version}: {m.skipped}" for m in measures)
        raise Error(f"no variant could be measured on the kit: {why}")
    base = _baseline(measured, evaluated)
    notes: list[str] = []
    eligible = [base]
    for m in measured:
        if m is base:
            continue
        loss = _loss(base, m) if evaluated else None
        if loss is None and evaluated:
            notes.append(f"{_label(m)} has no accuracy figure")
        elif loss is not None and loss > max_accuracy_loss:
            notes.append(
                f"{_label(m)} loses {loss:.1f} points of top-1 accuracy "
                f"(more than the {max_accuracy_loss:g} allowed)"
            )
        else:
            eligible.append(m)
    notes += [f"{_label(m)} not measured: {m.skipped}" for m in measures if m.skipped]
    thrifty = by_energy(base, eligible, notes, _label) if prefer == "energy" else None
    if thrifty is not None:
        best, reason = thrifty
        reason = _with_accuracy(reason, best, base, evaluated, max_accuracy_loss)
        return PrecisionDecision(kit_id, best.variant.name, best.variant, reason, measures, time.time())
    if prefer == "energy":
        notes.append("chosen by speed: not every variant has an energy figure from the kit")
    best = max(eligible, key=lambda m: m.throughput_per_s or 0.0)
    reason = _reason(best, base, eligible, notes, evaluated, max_accuracy_loss)
    return PrecisionDecision(kit_id, best.variant.name, best.variant, reason, measures, time.time())


def _reason(
    best: VariantMeasure,
    base: VariantMeasure,
    eligible: list[VariantMeasure],
    notes: list[str],
    evaluated: bool,
    tolerance: float,
) -> str:
    if best is base:
        slower = [m for m in eligible if m is not base]
        compared = [
            f"{_label(m)} runs only {_ratio(m, base)} its throughput here ({_rates(m, base)})" for m in slower
        ]
        return f"{_label(base)} kept: " + "; ".join(compared + notes or ["no other variant to compare"])
    faster = f"{_ratio(best, base)} the throughput of {_label(base)}"
    said = f"{_label(best)} runs {faster} here ({_rates(best, base)})"
    return "; ".join([_with_accuracy(said, best, base, evaluated, tolerance), *notes])


def _with_accuracy(
    said: str, best: VariantMeasure, base: VariantMeasure, evaluated: bool, tolerance: float
) -> str:
    """`said` and, when a variant other than the baseline won on measured accuracy, the figures."""
    if best is base or not evaluated or best.accuracy is None or base.accuracy is None:
        return said
    head, sep, tail = said.partition("; ")
    figures = f"top-1 {100 * best.accuracy:.1f}% vs {100 * base.accuracy:.1f}%"
    accuracy = f", {figures}, within the {tolerance:g}-point tolerance"
    return head + accuracy + sep + tail


def _baseline(measured: list[VariantMeasure], evaluated: bool) -> VariantMeasure:
    fp32 = [m for m in measured if m.variant.precision == "fp32"]
    if fp32:
        return fp32[0]
    if evaluated:
        return max(measured, key=lambda m: m.accuracy if m.accuracy is not None else -1.0)
    return measured[0]


def _loss(base: VariantMeasure, other: VariantMeasure) -> float | None:
    if base.accuracy is None or other.accuracy is None:
        return None
    return 100 * (base.accuracy - other.accuracy)


def _label(m: VariantMeasure) -> str:
    return f"{m.variant.precision.upper()} ({m.variant.version})"


def _ratio(m: VariantMeasure, base: VariantMeasure) -> str:
    return f"{(m.throughput_per_s or 0.0) / (base.throughput_per_s or 1.0):.2f}x"


def _rates(m: VariantMeasure, base: VariantMeasure) -> str:
    return f"{m.throughput_per_s:.1f} vs {base.throughput_per_s:.1f} inferences/s"
