"""The precision rule weighing energy (issue 24, `--prefer energy`): within the accuracy
tolerance the variant with the fewest joules per 1,000 inferences wins, and the reason names
the figures and whether they were measured or estimated."""

from __future__ import annotations

import pytest

from app.fleet.errors import Error
from app.fleet.precision_choice import Variant, VariantMeasure, _better, decide
from app.fleet.precision_energy import energy_basis, prefer

FP32 = Variant("m", "1", "fp32")
INT8 = Variant("m", "1-int8", "int8")
ESTIMATE = "estimated from CPU time × 15 W TDP"


def measure(
    variant: Variant, rate: float, joules: float | None, accuracy: float | None = None, basis: str = ESTIMATE
) -> VariantMeasure:
    return VariantMeasure(variant, rate, 1000 / rate, accuracy, joules_per_1000=joules, energy_basis=basis)


def test_energy_picks_the_thriftier_variant_even_when_it_is_slower() -> None:
    measures = (measure(FP32, 200.0, 9.0), measure(INT8, 150.0, 4.5))
    assert decide("k", measures, 1.0, evaluated=False).chosen == FP32  # speed: FP32 is faster
    decision = decide("k", measures, 1.0, evaluated=False, prefer="energy")
    assert decision.chosen == INT8
    assert decision.reason == (
        "INT8 (1-int8) uses 0.50x the energy of FP32 (1) here "
        "(4.5 vs 9 J per 1,000 inferences, estimated from CPU time × 15 W TDP)"
    )


def test_energy_keeps_the_baseline_when_it_uses_less_and_names_measured_figures() -> None:
    measures = (
        measure(FP32, 100.0, 2.2, basis="measured (rapl)"),
        measure(INT8, 180.0, 2.4, basis="measured (rapl)"),
    )
    decision = decide("k", measures, 1.0, evaluated=False, prefer="energy")
    assert decision.chosen == FP32
    assert decision.reason == (
        "FP32 (1) kept for energy: INT8 (1-int8) uses 1.09x its energy here "
        "(2.4 vs 2.2 J per 1,000 inferences, measured (rapl))"
    )


def test_the_accuracy_tolerance_still_rules_out_a_thriftier_variant() -> None:
    measures = (measure(FP32, 100.0, 9.0, 0.99), measure(INT8, 200.0, 3.0, 0.95))
    decision = decide("k", measures, 1.0, evaluated=True, prefer="energy")
    assert decision.chosen == FP32
    assert "INT8 (1-int8) loses 4.0 points of top-1 accuracy (more than the 1 allowed)" in decision.reason
    within = decide(
        "k", (measure(FP32, 100.0, 9.0, 0.99), measure(INT8, 90.0, 3.0, 0.985)), 1.0, True, "energy"
    )
    assert within.chosen == INT8
    assert within.reason.endswith(
        "(3 vs 9 J per 1,000 inferences, estimated from CPU time × 15 W TDP), "
        "top-1 98.5% vs 99.0%, within the 1-point tolerance"
    )


def test_without_energy_figures_the_choice_falls_back_to_speed_and_says_so() -> None:
    measures = (measure(FP32, 100.0, None, basis=""), measure(INT8, 180.0, 3.0))
    decision = decide("k", measures, 1.0, evaluated=False, prefer="energy")
    assert decision.chosen == INT8
    assert decision.reason.startswith("INT8 (1-int8) runs 1.80x the throughput of FP32 (1)")
    assert "chosen by speed: not every variant has an energy figure from the kit" in decision.reason


def test_rounds_keep_the_fastest_speed_and_the_lowest_energy() -> None:
    kept = measure(INT8, 150.0, 5.0)
    merged = _better(kept, measure(INT8, 170.0, 6.0, basis="measured (rapl)"))
    assert (merged.throughput_per_s, merged.joules_per_1000, merged.energy_basis) == (170.0, 5.0, ESTIMATE)


def test_how_the_figures_were_got_and_the_preference_named() -> None:
    assert energy_basis("rapl", "measured by RAPL over the runs") == "measured (rapl)"
    assert energy_basis("estimate", f"{ESTIMATE} (not measured: no RAPL)") == ESTIMATE
    assert energy_basis(None, None) == "estimated"
    assert prefer(" Energy ") == "energy"
    with pytest.raises(Error, match="choose speed or energy"):
        prefer("cheap")
