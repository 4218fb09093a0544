"""FP32 → INT8 (or FP16) copies of ONNX models, written atomically beside a manifest of their own.

Static mode writes QDQ with per-channel weights, calibrated on a folder of images fed exactly as
the agent feeds them; dynamic mode quantizes weights only. Both upgrade opsets below 13 first, and
nodes ONNX Runtime's quantizer cannot take stay FP32, named in the result. fp16 mode converts to
half precision for kits whose execution provider (a GPU) runs it best.
Weights take 7 bits unless asked otherwise: the laptop cannot know which CPU will run the model,
and on x86 CPUs without VNNI ONNX Runtime's u8×s8 kernels (vpmaddubsw) add products in pairs into
int16, which full 8-bit signed weights can overflow, so accuracy drops (ONNX Runtime's advice:
reduce_range). Dynamic mode stores a Conv model's weights unsigned (measured faster, and every
ONNX Runtime runs them; `agent.toolkit.quantize`), whose u8×u8 kernels widen to 16 bits and cannot
saturate; signed Conv weights only when asked, refused for a kit whose runtime lacks the kernel.
The side-by-side report (`app.fleet.quantreport`) fills the new manifest's figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from agent.toolkit.durable import fsync_path, replace_durably
from agent.toolkit.errors import Refusal
from agent.toolkit.float16 import to_float16
from agent.toolkit.int8kernels import SIGNED_CONV_SINCE, signed_conv_integer_in
from agent.toolkit.quantize import (
    METHODS,
    MIN_OPSET,
    UNSIGNED_NOTE,
    KeptFloat,
    Method,
    opset_of,
    prepare,
)
from agent.toolkit.quantize import quantize as toolkit_quantize
from agent.wire import InputSpec, Manifest, Normalisation, Precision
from app.fleet.images import common_size, image_files, load_image, spread
from app.fleet.models import manifest_path
from app.fleet.onnxmodel import (
    QuantizeError,
    cpu_session,
    image_input_of,
    input_spec_of,
    manifest_beside,
    read_model,
)
from app.fleet.quantmanifest import derived_manifest
from app.fleet.quantreport import Report, compare

__all__ = [
    "METHODS",
    "MIN_OPSET",
    "MODES",
    "KeptFloat",
    "Method",
    "Mode",
    "QuantizeError",
    "QuantizeResult",
    "quantize_model",
]


Mode = Literal["static", "dynamic", "fp16"]
MODES: tuple[Mode, ...] = ("static", "dynamic", "fp16")


@dataclass(frozen=True)
class QuantizeResult:
    """What `quantize_model` wrote. `manifest` is None only when the input is not image-like."""

    model: Path
    manifest_path: Path | None
    manifest: Manifest | None
    mode: Mode
    source_opset: int
    opset: int
    calibration_images: int
    report: Report
    notes: tuple[str, ...] = ()
    reduce_range: bool = True
    kept_float: tuple[KeptFloat, ...] = ()

    @property
    def precision(self) -> str:
        return "fp16" if self.mode == "fp16" else "int8"

    @property
    def weight_bits(self) -> int:
        return 16 if self.mode == "fp16" else _weight_bits(self.reduce_range)


def quantize_model(
    src: Path,
    dst: Path,
    mode: Mode,
    calibration: Path | None = None,
    *,
    per_channel: bool = True,
    reduce_range: bool = True,
    method: Method = "minmax",
    max_images: int = 300,
    evaluation: Path | None = None,
    seed: int = 0,
    runs: int = 100,
    input_size: tuple[int, int] | None = None,
    runtime: str | None = None,
    signed_conv: bool = False,
) -> QuantizeResult:
    """Quantize `src` to `dst` and write its manifest beside it; both are replaced only on success.

    `calibration`: a folder of images (static mode only). `evaluation`: an optional image folder
    (folder-per-label for accuracy) whose comparison fills the manifest's figures. `input_size`
    (height, width): the picture size the kit feeds, for a model that leaves it free.
    `reduce_range=False` gives full 8-bit weights: signed ones are accurate only on kits with VNNI/AMX
    or ARM dot-product, unsigned ones (dynamic mode's Conv default) everywhere.
    `runtime`: the ONNX Runtime version of the kit that will run the model (its facts), None if unknown.
    `signed_conv`: dynamic mode stores signed Conv weights (an experiment; measured slower), refused
    when `runtime` is known to lack the signed ConvInteger kernel.
    """
    _check_options(src, dst, mode, method)
    _check_signed(mode, signed_conv, runtime)
    model = read_model(src)
    cpu_session(src)  # a model ONNX Runtime cannot run is refused before minutes of work
    source = manifest_beside(src)
    files = _calibration_files(calibration, max_images) if mode == "static" else []
    notes = [f"{mode} mode ignores the calibration images"] if mode != "static" and calibration else []
    spec = _input_spec(model, source, input_size, files, notes)
    tensors = _calibration_tensors(files, spec, source.normalisation if source else Normalisation())
    if evaluation is not None:
        image_files(evaluation, "evaluation folder")  # fail before minutes of work, not after
    with (
        tempfile.TemporaryDirectory(prefix="kitfleet-quantize-") as scratch,
        _staged(dst, manifest_path(dst)) as (staged, staged_manifest),
    ):
        kept = _converted(
            model,
            Path(scratch),
            staged,
            spec,
            tensors,
            notes,
            mode,
            per_channel=per_channel,
            reduce_range=reduce_range,
            method=method,
            signed_conv=signed_conv,
        )
        if mode != "fp16":
            notes.append(_weights_note(reduce_range, unsigned=UNSIGNED_NOTE in notes))
        precision: Precision = "fp16" if mode == "fp16" else "int8"
        report = compare(src, staged, evaluation, runs=runs, input_spec=spec, precision=precision)
        report = dataclasses.replace(report, int8=dataclasses.replace(report.int8, path=dst))
        manifest = derived_manifest(
            src, staged, source, spec, _how(mode, reduce_range), report, seed, notes, precision=precision
        )
        if manifest is None:
            staged_manifest.unlink()  # and so the manifest of an earlier output goes too
        else:
            staged_manifest.write_text(manifest.model_dump_json(indent=2) + "\n")
    return QuantizeResult(
        model=dst,
        manifest_path=manifest_path(dst) if manifest else None,
        manifest=manifest,
        mode=mode,
        source_opset=opset_of(model),
        opset=opset_of(read_model(dst)),
        calibration_images=len(tensors),
        report=report,
        notes=tuple(notes),
        reduce_range=reduce_range,
        kept_float=tuple(kept),
    )


def _converted(
    model: onnx.ModelProto,
    scratch: Path,
    staged: Path,
    spec: InputSpec | None,
    tensors: Sequence[np.ndarray],
    notes: list[str],
    mode: Mode,
    **options: Any,
) -> list[KeptFloat]:
    """The toolkit's pipeline (the one a kit's quantize job runs too), its refusals as QuantizeError."""
    try:
        if mode == "fp16":
            onnx.save(to_float16(model, notes), str(staged))
            return []
        return toolkit_quantize(
            prepare(model, scratch, notes),
            staged,
            spec.name if spec else None,
            tensors,
            notes=notes,
            **options,
        )
    except Refusal as exc:
        raise QuantizeError(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None


def _check_signed(mode: Mode, signed_conv: bool, runtime: str | None) -> None:
    if not signed_conv:
        return
    if mode != "dynamic":
        raise QuantizeError(
            f"signed Conv weights are a dynamic-mode choice; {mode} mode decides its weights itself, "
            "leave the signed option out"
        )
    if runtime is not None and not signed_conv_integer_in(runtime):
        raise QuantizeError(
            f"the kit's ONNX Runtime {runtime} has no ConvInteger kernel for signed weights "
            f"({SIGNED_CONV_SINCE[0]}.{SIGNED_CONV_SINCE[1]}+) and would refuse the model; "
            "leave the signed option out"
        )


def _how(mode: Mode, reduce_range: bool) -> str:
    if mode == "fp16":
        return "FP16 by kitfleet, FP32 inputs and outputs"
    return f"{mode} INT8 by kitfleet, {_weight_bits(reduce_range)}-bit weights"


def _weight_bits(reduce_range: bool) -> int:
    return 7 if reduce_range else 8


def _weights_note(reduce_range: bool, *, unsigned: bool) -> str:
    if unsigned:  # ONNX Runtime's u8×u8 kernels widen to int16 and add pairs in int32 (vpmaddwd)
        return (
            "7-bit weights (reduce_range, codes 0-127): accurate on every CPU; these unsigned weights "
            "run on u8×u8 kernels, which do not saturate, so full 8-bit ones would be too"
            if reduce_range
            else "full 8-bit weights (codes 0-255): accurate on every CPU, as these unsigned weights run "
            "on u8×u8 kernels, which do not saturate"
        )
    if reduce_range:
        return (
            "7-bit weights (reduce_range): accurate on every CPU; full 8-bit weights are only for kits "
            "with VNNI/AMX or ARM dot-product"
        )
    return (
        "full 8-bit weights: deploy only to kits with VNNI/AMX or ARM dot-product; x86 CPUs without "
        "VNNI saturate on them and lose accuracy"
    )


def _check_options(src: Path, dst: Path, mode: str, method: str) -> None:
    if mode not in MODES:
        raise QuantizeError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if method not in METHODS:
        raise QuantizeError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    if dst.suffix.lower() != ".onnx" or dst.is_dir():
        raise QuantizeError(
            f"the output {dst} must be a file name ending in .onnx (its manifest goes "
            "beside it as <name>.manifest.json)"
        )
    if dst.resolve() == src.resolve():
        raise QuantizeError(f"the output {dst} would overwrite the input; choose another name")


def _calibration_files(folder: Path | None, limit: int) -> list[Path]:
    if folder is None:
        raise QuantizeError(
            "static quantization needs calibration images: give a folder of a few "
            "hundred typical inputs, or use dynamic mode"
        )
    return spread(image_files(folder, "calibration folder"), limit)


def _input_spec(
    model: onnx.ModelProto,
    source: Manifest | None,
    size: tuple[int, int] | None,
    calibration: Sequence[Path],
    notes: list[str],
) -> InputSpec | None:
    """The input as the kit will feed it: the manifest's, else the model's, its free size filled in."""
    if source is not None:
        if size is not None and size != (source.input.height, source.input.width):
            raise QuantizeError(
                f"the manifest beside the model says its input is {source.input.height}x"
                f"{source.input.width}; leave the input size out or correct the manifest"
            )
        spec: InputSpec | None = source.input
    else:
        image = image_input_of(model)
        if image is None and size is not None:
            raise QuantizeError(
                "an input size was given but the model's first input is not an image "
                "([N, 1|3, H, W] or [N, H, W, 1|3]); leave the input size out"
            )
        if image is not None and image.free_size and size is None and calibration:
            size = _calibration_size(calibration, notes)
        spec = input_spec_of(model, size)
        if image is not None and spec is None:  # PP-OCR's recogniser: 1.5x faster at 1x1, slower at 48x320
            notes.append(FREE_SIZE_NOTE)
    names = [i.name for i in model.graph.input]
    if spec is not None and spec.name not in names:
        raise QuantizeError(
            f"the manifest names input {spec.name!r}, the model's inputs are {names}; "
            "correct input.name in the manifest"
        )
    return spec


FREE_SIZE_NOTE = (
    "the model leaves its picture size free and none was given: its latency and outputs were "
    "measured on a 1x1 input, not what a kit feeds, so the figures and the recommendation may not "
    "hold; give the input size (HxW) for ones that do"
)


def _calibration_size(files: Sequence[Path], notes: list[str]) -> tuple[int, int]:
    """A free picture size taken from calibration images that all share one."""
    size = common_size(files)
    if size is None:
        raise QuantizeError(
            "the model leaves its input's height and width free and the calibration "
            "images differ in size; give the size the kit will feed (--input-size HxW)"
        )
    notes.append(
        f"the model leaves its picture size free: used {size[0]}x{size[1]}, the calibration "
        "images' size (give the input size to choose another)"
    )
    return size


def _calibration_tensors(
    files: Sequence[Path], spec: InputSpec | None, norm: Normalisation
) -> list[np.ndarray]:
    if not files:
        return []
    if spec is None:
        raise QuantizeError(
            "static quantization needs an image input ([N, 1|3, H, W] or [N, H, W, 1|3]) "
            "or a manifest beside the model that describes it; use dynamic mode otherwise"
        )
    return [load_image(path, spec, norm) for path in files]


@contextlib.contextmanager
def _staged(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths beside `targets` that replace them, in order, when the block succeeds.

    A staged path the block removed removes its target instead: an earlier output's manifest must not
    stay beside a new model it does not describe. On failure every staged path vanishes.
    """
    staged: list[Path] = []
    try:
        for target in targets:
            staged.append(_temporary_beside(target))
        yield staged
        for path in staged:
            if path.exists():
                fsync_path(path)
        for path, target in zip(staged, targets, strict=True):
            if path.exists():
                replace_durably(path, target)
            else:
                target.unlink(missing_ok=True)
    finally:
        for path in staged:
            path.unlink(missing_ok=True)


def _temporary_beside(target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise QuantizeError(
            f"cannot write beside {target}: {exc.strerror}; choose a folder you can write to"
        ) from None
    os.close(handle)
    path = Path(name)
    path.chmod(target.stat().st_mode & 0o777 if target.exists() else 0o644)  # mkstemp makes it 0600
    return path
