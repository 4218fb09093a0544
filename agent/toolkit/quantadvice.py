"""One recommendation after quantizing, from what was measured and what the target CPU can do.

`kitfleet quantize`, its report, the Quantize dialog, deploy's advice and the kit's quantize job
all word their verdict through `recommend`, so a technician never reads "ready" on one screen and
"15x slower" on the next. The rule: accuracy first (a less accurate copy is never recommended),
then the measured speed, then what the target's CPU facts say about INT8 (VNNI, AMX, ARM
dot-product), which can overturn a measurement made on another machine but only by asking for a
measurement on the kit, never by promising speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Measured", "Recommendation", "Use", "from_figures", "recommend"]

Use = Literal["int8", "fp16", "fp32", "measure"]

MIN_AGREEMENT = 0.97  # top-1 agreement with FP32 below this is a visible change of answers
MAX_ACCURACY_LOSS = 1.0  # percentage points of labelled top-1 accuracy
FASTER = 1.1  # speed ratios between SLOWER and FASTER are "about as fast"
SLOWER = 0.95


@dataclass(frozen=True)
class Measured:
    """FP32 against its converted copy, measured on one machine (`where`, e.g. "this laptop")."""

    precision: str  # "int8" or "fp16"
    speed_ratio: float | None  # FP32 time / converted time: above 1 the copy is faster
    size_ratio: float | None = None  # FP32 size / converted size
    agreement: float | None = None  # top-1 agreement with FP32, 0-1
    accuracy_delta_points: float | None = None  # converted minus FP32 labelled top-1 accuracy
    where: str = "this machine"


@dataclass(frozen=True)
class Recommendation:
    """What to deploy, in one sentence (`headline`) and its reasons."""

    use: Use
    headline: str
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return " ".join([self.headline, *self.reasons])


def recommend(
    measured: Measured,
    *,
    target: str = "",
    target_int8: bool | None = None,
    target_fp16: bool | None = None,
) -> Recommendation:
    """The verdict for deploying the converted copy to `target` (a kit's name; "" when unknown).

    `target_int8`: whether the target CPU has INT8 dot-product instructions (None: unknown).
    `target_fp16`: whether the target's execution provider favours FP16 (a GPU; None: unknown).
    """
    name = measured.precision.upper()
    worse = _less_accurate(measured)
    if worse:
        return Recommendation("fp32", f"Recommendation: keep FP32; {name} {worse}.", _smaller(measured))
    if measured.precision == "fp16":
        return _fp16(measured, target, target_fp16)
    return _int8(measured, target, target_int8)


def from_figures(precision: str, figures: Mapping[str, float], where: str) -> Measured:
    """What a manifest's figures (written by `kitfleet quantize` or a kit's quantize job) measured."""
    accuracy = figures.get("accuracy_top1"), figures.get("fp32_accuracy_top1")
    return Measured(
        precision=precision,
        speed_ratio=figures.get("speed_ratio_vs_fp32"),
        size_ratio=figures.get("size_ratio_vs_fp32"),
        agreement=figures.get("agreement_top1_vs_fp32"),
        accuracy_delta_points=(
            None if accuracy[0] is None or accuracy[1] is None else 100 * (accuracy[0] - accuracy[1])
        ),
        where=where,
    )


def _int8(measured: Measured, target: str, target_int8: bool | None) -> Recommendation:
    ratio, where = measured.speed_ratio, measured.where
    speed = _speed(ratio, where)
    on = f" on {target}" if target else ""
    if ratio is None:  # a package quantized elsewhere, without figures
        if target_int8:
            return Recommendation("int8", f"Recommendation: INT8{on}.", (f"{_has(target)}.",))
        if target_int8 is False:
            return Recommendation(
                "fp32",
                f"Recommendation: FP32{on}; it lacks INT8 dot-product instructions (VNNI, AMX, ARM "
                "dotprod), so INT8 is unlikely to run faster there.",
            )
        return Recommendation("measure", "Recommendation: measure INT8 against FP32 before deploying it.")
    if ratio >= FASTER and target_int8 is not False:
        kept = (
            " and kept FP32's answers"
            if measured.agreement is not None or measured.accuracy_delta_points is not None
            else "; its answers were not compared with FP32's (give pictures to compare them on)"
        )
        return Recommendation("int8", f"Recommendation: INT8{on}; it ran {speed}{kept}.")
    if ratio >= FASTER:  # fast where measured, but the target lacks the instructions that made it so
        return Recommendation(
            "measure",
            f"Recommendation: check INT8 on {target} before relying on it; it ran {speed}, "
            f"but {target} lacks INT8 dot-product instructions (VNNI, AMX, ARM dotprod).",
            (_benchmark_hint(target),),
        )
    if target_int8:  # slow here, but the target has the instructions this machine may lack
        return Recommendation(
            "measure",
            f"Recommendation: FP32 unless a benchmark on {target} says otherwise; INT8 ran {speed}, "
            f"but {_has(target)}, where INT8 often runs faster.",
            (_benchmark_hint(target),),
        )
    lacks = (
        f" {target} lacks INT8 dot-product instructions (VNNI, AMX, ARM dotprod)."
        if target_int8 is False
        else ""
    )
    return Recommendation(
        "fp32", f"Recommendation: keep FP32{on}; INT8 ran {speed}.{lacks}", _smaller(measured)
    )


def _fp16(measured: Measured, target: str, target_fp16: bool | None) -> Recommendation:
    speed = _speed(measured.speed_ratio, measured.where)
    if target_fp16:
        return Recommendation(
            "fp16",
            f"Recommendation: FP16 on {target}; its execution provider runs FP16 best.",
            (f"(On the CPU it ran {speed}; the GPU is what FP16 is for.)",) if speed else (),
        )
    if target_fp16 is False:
        return Recommendation(
            "fp32",
            f"Recommendation: keep FP32 on {target}; it has no execution provider that runs FP16 "
            "faster (a GPU), and on a CPU FP16 saves memory, not time.",
            _smaller(measured),
        )
    return Recommendation(
        "fp16",
        "Recommendation: FP16 only for kits whose execution provider favours it (a GPU: see "
        "`kitfleet facts KIT`); keep FP32 for CPU-only kits.",
        (f"On this CPU it ran {speed}.",) if speed else (),
    )


def _less_accurate(measured: Measured) -> str:
    """Why the copy is less accurate than FP32, or "" when it is not."""
    delta, agreement = measured.accuracy_delta_points, measured.agreement
    if delta is not None and delta < -MAX_ACCURACY_LOSS:
        return f"lost {-delta:.1f} points of top-1 accuracy against FP32"
    if agreement is not None and agreement < MIN_AGREEMENT:
        return (
            f"agreed with FP32's top-1 answer on only {100 * agreement:.1f} % of the answers compared "
            "(one per image, or per step of a sequence)"
        )
    return ""


def _speed(ratio: float | None, where: str) -> str:
    if ratio is None:
        return ""
    if ratio >= FASTER:
        return f"{ratio:.2f}x as fast as FP32 on {where}"
    if ratio >= SLOWER:
        return f"about as fast as FP32 ({ratio:.2f}x its speed) on {where}, no faster"
    return f"{1 / ratio:.1f}x slower than FP32 ({ratio:.2f}x its speed) on {where}"


def _smaller(measured: Measured) -> tuple[str, ...]:
    ratio = measured.size_ratio
    if ratio is None or ratio < 1.5:
        return ()
    return (f"The {measured.precision.upper()} file is {ratio:.1f}x smaller, if memory is what is short.",)


def _has(target: str) -> str:
    return f"{target or 'the kit'} has INT8 dot-product instructions (VNNI, AMX or ARM dotprod)"


def _benchmark_hint(target: str) -> str:
    kit = target or "KIT"
    return (
        f"Deploy it without --activate, then time it there: `kitfleet jobs submit {kit} --kind benchmark "
        "--model NAME --version VERSION`."
    )
