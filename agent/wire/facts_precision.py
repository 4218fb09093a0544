"""Which precision each ONNX Runtime execution provider runs fastest: one rule for kit and app."""

from __future__ import annotations

from collections.abc import Iterable

from agent.wire.facts_families import Int8Advice, ProviderPrecision
from agent.wire.models import Precision

__all__ = ["favoured_precision", "favoured_precisions"]

# GPU providers: half precision runs on their tensor/matrix units at about twice the FP32 rate
# with half the memory, and keeps accuracy for vision models.
_FP16_PROVIDERS = {
    "CUDAExecutionProvider": "NVIDIA GPUs",
    "TensorrtExecutionProvider": "TensorRT on NVIDIA GPUs",
    "DmlExecutionProvider": "DirectML GPUs",
    "CoreMLExecutionProvider": "Apple's GPU and Neural Engine",
    "ROCMExecutionProvider": "AMD GPUs",
    "MIGraphXExecutionProvider": "AMD GPUs",
}
_CPU = "CPUExecutionProvider"
_VIA = {"vnni": "VNNI", "amx": "AMX INT8", "dotprod": "ARM dot-product"}


def favoured_precision(provider: str, int8: Int8Advice | None) -> ProviderPrecision:
    """The precision `provider` favours; for the CPU, from the CPU facts' INT8 advice."""
    if provider in _FP16_PROVIDERS:
        hardware = _FP16_PROVIDERS[provider]
        return _precision(provider, "fp16", f"{hardware} run FP16 about twice as fast as FP32")
    if provider == _CPU:
        return _cpu_precision(int8)
    return _precision(provider, "fp32", "no faster precision is known for it; FP32 keeps full accuracy")


def favoured_precisions(providers: Iterable[str], int8: Int8Advice | None) -> list[ProviderPrecision]:
    """`favoured_precision` for each provider, in the order given."""
    return [favoured_precision(provider, int8) for provider in providers]


def _cpu_precision(int8: Int8Advice | None) -> ProviderPrecision:
    if int8 is None or int8.accelerated is None:
        return _precision(_CPU, "fp32", "the CPU facts could not be read; FP32 is the safe choice")
    if int8.accelerated:
        via = _VIA.get(int8.via or "", int8.via or "INT8")
        return _precision(_CPU, "int8", f"the CPU's {via} instructions run INT8 models fastest")
    return _precision(_CPU, "fp32", "the CPU lacks INT8 dot-product instructions (VNNI, AMX, ARM dotprod)")


def _precision(provider: str, precision: Precision, reason: str) -> ProviderPrecision:
    return ProviderPrecision(provider=provider, precision=precision, reason=reason)
