"""Deploy's precision advice: the quantize measurement and the kit's facts, in quantize's words."""

from __future__ import annotations

from agent.wire import CpuFacts, FactFamilies, InputSpec, Int8Advice, Manifest, Precision, RuntimeFacts
from app.fleet.precision_advice import deploy_advice

SLOW = {"speed_ratio_vs_fp32": 1 / 15, "size_ratio_vs_fp32": 3.9, "agreement_top1_vs_fp32": 1.0}


def manifest(precision: Precision, figures: dict[str, float]) -> Manifest:
    return Manifest(
        name="digits",
        version=f"1-{precision}",
        task="classification",
        input=InputSpec(name="x", height=32, width=32, channels=1),
        precision=precision,
        sha256="0" * 64,
        size_bytes=1,
        figures=figures,
    )


def kit(accelerated: bool | None) -> FactFamilies:
    via = "vnni" if accelerated else None
    return FactFamilies(
        cpu=CpuFacts(int8=Int8Advice(accelerated=accelerated, via=via, recommended=accelerated))
    )


def test_an_int8_model_measured_15x_slower_is_never_called_faster_on_a_kit_without_vnni() -> None:
    line = deploy_advice("kitA", manifest("int8", SLOW), kit(False))

    assert line.startswith("kitA: Recommendation: keep FP32 on kitA; INT8 ran 15.0x slower")
    assert "kitA lacks INT8 dot-product instructions" in line
    assert "markedly" not in line
    assert "runs fast" not in line


def test_on_a_vnni_kit_the_slow_measurement_asks_for_a_benchmark_there() -> None:
    line = deploy_advice("kitA", manifest("int8", SLOW), kit(True))

    assert "FP32 unless a benchmark on kitA says otherwise" in line
    assert "kitfleet jobs submit kitA --kind benchmark" in line


def test_an_int8_model_measured_faster_is_recommended_on_a_vnni_kit() -> None:
    fast = {**SLOW, "speed_ratio_vs_fp32": 2.4}

    assert deploy_advice("kitA", manifest("int8", fast), kit(True)).startswith(
        "kitA: Recommendation: INT8 on kitA"
    )


def test_an_fp32_model_on_a_vnni_kit_suggests_quantizing_and_measuring() -> None:
    line = deploy_advice("kitA", manifest("fp32", {}), kit(True))

    assert "kitfleet quantize" in line
    assert "benchmark job" in line
    assert deploy_advice("kitB", manifest("fp32", {}), kit(False)) == ""


def test_without_facts_or_figures_there_is_nothing_to_say() -> None:
    assert deploy_advice("kitA", manifest("int8", {}), None) == ""


def gpu_kit(providers: list[str]) -> FactFamilies:
    return FactFamilies(
        cpu=CpuFacts(int8=Int8Advice(accelerated=False)),
        runtime=RuntimeFacts(available=True, providers=providers),
    )


def test_fp16_follows_the_execution_providers_the_kit_reports() -> None:
    fp16 = manifest("fp16", {"speed_ratio_vs_fp32": 0.6, "agreement_top1_vs_fp32": 1.0})

    on_gpu = deploy_advice("gpuKit", fp16, gpu_kit(["CUDAExecutionProvider", "CPUExecutionProvider"]))
    on_cpu = deploy_advice("cpuKit", fp16, gpu_kit(["CPUExecutionProvider"]))

    assert on_gpu.startswith("gpuKit: Recommendation: FP16 on gpuKit")
    assert on_cpu.startswith("cpuKit: Recommendation: keep FP32 on cpuKit")
    fp32 = deploy_advice("gpuKit", manifest("fp32", {}), gpu_kit(["CUDAExecutionProvider"]))
    assert "kitfleet quantize --mode fp16" in fp32
