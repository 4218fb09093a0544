"""The precision rule on its own: the fastest measured variant within the accuracy tolerance of
FP32, FP16 only where measured, and a reason that names the numbers it went by."""

from __future__ import annotations

import pytest

from app.fleet.errors import Error
from app.fleet.precision_choice import Variant, VariantMeasure, decide

FP32 = Variant("m", "1", "fp32")
INT8 = Variant("m", "1-int8", "int8")
FP16 = Variant("m", "1-fp16", "fp16")


def measure(variant: Variant, rate: float, accuracy: float | None = None) -> VariantMeasure:
    return VariantMeasure(variant, rate, 1000 / rate, accuracy)


def test_the_faster_int8_wins_and_says_by_how_much() -> None:
    decision = decide("k", (measure(FP32, 100.0), measure(INT8, 180.0)), 1.0, evaluated=False)
    assert decision.chosen == INT8
    assert decision.reason == (
        "INT8 (1-int8) runs 1.80x the throughput of FP32 (1) here (180.0 vs 100.0 inferences/s)"
    )


def test_a_slower_int8_keeps_fp32() -> None:
    decision = decide("k", (measure(FP32, 100.0), measure(INT8, 90.0)), 1.0, evaluated=False)
    assert decision.chosen == FP32
    assert (
        decision.reason
        == "FP32 (1) kept: INT8 (1-int8) runs only 0.90x its throughput here (90.0 vs 100.0 inferences/s)"
    )


def test_accuracy_within_and_beyond_the_tolerance() -> None:
    within = decide("k", (measure(FP32, 100.0, 0.990), measure(INT8, 200.0, 0.985)), 1.0, evaluated=True)
    assert within.chosen == INT8
    assert within.reason.endswith("top-1 98.5% vs 99.0%, within the 1-point tolerance")
    beyond = decide("k", (measure(FP32, 100.0, 0.990), measure(INT8, 200.0, 0.985)), 0.25, evaluated=True)
    assert beyond.chosen == FP32
    assert beyond.reason == (
        "FP32 (1) kept: INT8 (1-int8) loses 0.5 points of top-1 accuracy (more than the 0.25 allowed)"
    )
    unknown = decide("k", (measure(FP32, 100.0, 0.99), measure(INT8, 200.0)), 1.0, evaluated=True)
    assert unknown.chosen == FP32
    assert "INT8 (1-int8) has no accuracy figure" in unknown.reason


def test_fp16_not_measured_is_said_and_three_way_picks_the_fastest() -> None:
    skipped = VariantMeasure(FP16, skipped="no execution provider on this kit favours FP16")
    decision = decide("k", (measure(FP32, 100.0), measure(INT8, 150.0), skipped), 1.0, evaluated=False)
    assert decision.chosen == INT8
    assert decision.reason.endswith(
        "FP16 (1-fp16) not measured: no execution provider on this kit favours FP16"
    )
    three = decide(
        "k", (measure(FP32, 100.0), measure(INT8, 150.0), measure(FP16, 210.0)), 1.0, evaluated=False
    )
    assert three.chosen == FP16


def test_without_fp32_the_most_accurate_is_the_baseline() -> None:
    decision = decide("k", (measure(INT8, 150.0, 0.90), measure(FP16, 120.0, 0.95)), 1.0, evaluated=True)
    assert decision.chosen == FP16  # INT8 is 5 points below it
    assert "INT8 (1-int8) loses 5.0 points" in decision.reason


def test_nothing_measured_is_an_error_naming_why() -> None:
    with pytest.raises(Error, match="no variant could be measured on the kit: 1: benchmark failed"):
        decide("k", (VariantMeasure(FP32, skipped="benchmark failed"),), 1.0, evaluated=False)
