"""Deploy's advice about a model's precision on one kit, worded as `kitfleet quantize` words it.

The quantize step measured FP32 against the copy (the manifest's figures); the kit's last-known
facts say whether its CPU has INT8 dot-product instructions and whether an execution provider
there favours FP16. `agent.toolkit.quantadvice.recommend` turns both into one sentence, so deploy
never promises speed the measurement contradicts.
"""

from __future__ import annotations

from agent.toolkit.quantadvice import from_figures, recommend
from agent.wire import FactFamilies, Manifest

__all__ = ["deploy_advice"]

_MEASURED_ON = "the machine that quantized it"


def deploy_advice(kit: str, manifest: Manifest, facts: FactFamilies | None) -> str:
    """One line for deploying `manifest` to `kit`; "" when there is nothing to say."""
    int8, fp16 = _int8_here(facts), _fp16_here(facts)
    if manifest.precision == "fp32":
        return _fp32_advice(kit, int8, fp16)
    if facts is None and not manifest.figures:
        return ""
    measured = from_figures(manifest.precision, manifest.figures, _MEASURED_ON)
    return f"{kit}: {recommend(measured, target=kit, target_int8=int8, target_fp16=fp16).text()}"


def _fp32_advice(kit: str, int8: bool | None, fp16: bool | None) -> str:
    if fp16:
        return f"{kit}: an execution provider here favours FP16 (a GPU); try `kitfleet quantize --mode fp16`"
    if int8:
        return (
            f"{kit}: its CPU has INT8 dot-product instructions, where INT8 often runs faster; try "
            "`kitfleet quantize` and compare both with a benchmark job on this kit"
        )
    return ""


def _int8_here(facts: FactFamilies | None) -> bool | None:
    int8 = facts.cpu.int8 if facts is not None and facts.cpu is not None else None
    return None if int8 is None else int8.accelerated


def _fp16_here(facts: FactFamilies | None) -> bool | None:
    if facts is None or facts.runtime is None or not facts.runtime.available:
        return None
    return any(choice.precision == "fp16" for choice in facts.precision_by_provider())
