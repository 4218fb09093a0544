"""One recommendation after quantizing: accuracy first, then the measured speed, then the target CPU."""

from __future__ import annotations

import pytest

from agent.toolkit.quantadvice import Measured, from_figures, recommend

PROMISES = ("ready", "markedly", "runs fast")


def measured(ratio: float | None, **kwargs: object) -> Measured:
    return Measured(precision="int8", speed_ratio=ratio, size_ratio=3.8, where="this laptop", **kwargs)  # type: ignore[arg-type]


def test_int8_measured_15x_slower_recommends_fp32_and_promises_nothing() -> None:
    advice = recommend(measured(1 / 15, agreement=1.0))

    assert advice.use == "fp32"
    text = advice.text()
    assert "15.0x slower" in text
    assert "keep FP32" in text
    assert "3.8x smaller" in text  # the one thing INT8 still offers, said as such
    assert not any(word in text.lower() for word in PROMISES)


def test_int8_about_as_fast_is_not_worth_it_on_a_cpu_without_int8_instructions() -> None:
    advice = recommend(measured(1.02, agreement=1.0), target="kitA", target_int8=False)

    assert advice.use == "fp32"
    assert "no faster" in advice.text()
    assert "kitA lacks INT8 dot-product" in advice.text()


@pytest.mark.parametrize("target_int8", [None, True])
def test_int8_faster_and_as_accurate_is_recommended(target_int8: bool | None) -> None:
    advice = recommend(measured(2.5, agreement=0.99), target="kitA", target_int8=target_int8)

    assert advice.use == "int8"
    assert "2.50x as fast" in advice.headline


def test_a_slow_measurement_on_another_cpu_asks_for_a_benchmark_on_a_vnni_kit() -> None:
    advice = recommend(measured(0.5, agreement=1.0), target="kitA", target_int8=True)

    assert advice.use == "measure"
    assert "kitfleet jobs submit kitA --kind benchmark" in advice.text()
    assert "2.0x slower" in advice.text()


def test_fast_here_but_the_kit_lacks_the_instructions_asks_for_a_benchmark_there() -> None:
    advice = recommend(measured(2.0, agreement=1.0), target="kitB", target_int8=False)

    assert advice.use == "measure"
    assert "kitB lacks INT8 dot-product" in advice.text()


@pytest.mark.parametrize(
    ("extra", "why"),
    [({"agreement": 0.9}, "only 90.0 %"), ({"accuracy_delta_points": -2.5}, "lost 2.5 points")],
)
def test_less_accurate_is_never_recommended_however_fast(extra: dict[str, float], why: str) -> None:
    advice = recommend(measured(3.0, **extra), target="kitA", target_int8=True)

    assert advice.use == "fp32"
    assert why in advice.headline


def test_fp16_follows_the_kits_execution_provider() -> None:
    fp16 = Measured(precision="fp16", speed_ratio=0.6, size_ratio=2.0, agreement=1.0, where="this laptop")

    assert recommend(fp16, target="gpu-kit", target_fp16=True).use == "fp16"
    assert recommend(fp16, target="cpu-kit", target_fp16=False).use == "fp32"
    unknown = recommend(fp16)
    assert unknown.use == "fp16"
    assert "kitfleet facts KIT" in unknown.text()


def test_a_manifests_figures_read_back_as_measured() -> None:
    figures = {
        "speed_ratio_vs_fp32": 0.07,
        "size_ratio_vs_fp32": 3.9,
        "agreement_top1_vs_fp32": 0.98,
        "accuracy_top1": 0.95,
        "fp32_accuracy_top1": 0.97,
    }
    back = from_figures("int8", figures, "the quantizing machine")

    assert back.speed_ratio == 0.07
    assert back.accuracy_delta_points == pytest.approx(-2.0)
    assert recommend(back).use == "fp32"
