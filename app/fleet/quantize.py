"""FP32 → INT8 quantization of ONNX models, and the side-by-side report that judges the result.

Static mode writes QDQ with per-channel weights, calibrated on a folder of images fed exactly as
the agent feeds them; dynamic mode quantizes weights only. Both upgrade opsets below 13 first.
The quantized model gets a manifest of its own (precision int8, new sha256, golden, figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image, ImageOps
from pydantic import ValidationError

from agent.api.schemas import Golden, InputSpec, Manifest, Normalisation, Precision
from app.fleet.errors import Error
from app.fleet.models import load_package, manifest_path, sha256_file

__all__ = ["IMAGE_SUFFIXES", "MIN_OPSET", "Mode", "ModelFigures", "QuantizeError", "QuantizeResult",
           "Report", "compare", "golden_for", "image_files", "input_spec_of", "latency_ms",
           "load_image", "opset_of", "quantize_model", "read_model"]

Mode = Literal["static", "dynamic"]
Method = Literal["minmax", "entropy", "percentile"]
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need opset 13
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}
_BLOCK = 25  # timed runs of one model before switching to the other
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
           onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT8: "int8"}


class QuantizeError(Error):
    """The model, the images or the options cannot be quantized; str() says how to fix it."""


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


@dataclass(frozen=True)
class ModelFigures:
    """One side of a comparison: batch-1 milliseconds with ONNX Runtime's default thread count and with
    one thread (`_1t`); accuracy is a fraction (0-1), None without labelled images."""

    path: Path
    precision: str
    size_bytes: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_1t_ms_p50: float
    latency_1t_ms_p95: float
    accuracy_top1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class Report:
    """FP32 against INT8 on this machine: size, latency and how often they agree."""

    fp32: ModelFigures
    int8: ModelFigures
    images: int
    labelled: bool
    agreement_top1: float | None
    mean_abs_error: float
    runs: int

    @property
    def speed_ratio(self) -> float:
        """How many times faster INT8 runs (p50, default threads)."""
        return self.fp32.latency_ms_p50 / self.int8.latency_ms_p50

    @property
    def speed_ratio_1t(self) -> float:
        """How many times faster INT8 runs on one thread (p50)."""
        return self.fp32.latency_1t_ms_p50 / self.int8.latency_1t_ms_p50

    @property
    def size_ratio(self) -> float:
        """How many times smaller the INT8 file is."""
        return self.fp32.size_bytes / self.int8.size_bytes

    @property
    def accuracy_delta_points(self) -> float | None:
        """INT8 accuracy minus FP32 accuracy, in percentage points."""
        if self.fp32.accuracy_top1 is None or self.int8.accuracy_top1 is None:
            return None
        return 100 * (self.int8.accuracy_top1 - self.fp32.accuracy_top1)

    def to_dict(self) -> dict[str, Any]:
        return {"fp32": self.fp32.to_dict(), "int8": self.int8.to_dict(), "images": self.images,
                "labelled": self.labelled, "agreement_top1": self.agreement_top1,
                "mean_abs_error": self.mean_abs_error, "runs": self.runs,
                "speed_ratio": self.speed_ratio, "speed_ratio_1t": self.speed_ratio_1t,
                "size_ratio": self.size_ratio,
                "accuracy_delta_points": self.accuracy_delta_points}

    def to_text(self) -> str:
        rows = [("", f"FP32 {self.fp32.path.name}", f"INT8 {self.int8.path.name}", "INT8 vs FP32"),
                ("size", _megabytes(self.fp32.size_bytes), _megabytes(self.int8.size_bytes),
                 _times(self.size_ratio, "smaller", "larger")),
                *self._latency_rows()]
        delta = self.accuracy_delta_points
        if delta is not None:
            rows.append(("top-1 accuracy", _percent(self.fp32.accuracy_top1),
                         _percent(self.int8.accuracy_top1), f"{delta:+.2f} points"))
        if self.agreement_top1 is not None:
            rows.append(("top-1 agreement", "", "", _percent(self.agreement_top1)))
        rows.append(("mean |INT8 − FP32|", "", "", f"{self.mean_abs_error:.4g}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        labels = " with labels" if self.labelled else ""
        source = f"{self.images} images{labels}" if self.images else "a random input"
        lines.append(f"latency: batch 1, {self.runs} runs each on this machine; outputs compared on {source}")
        return "\n".join(lines)

    def _latency_rows(self) -> list[tuple[str, str, str, str]]:
        a, b = self.fp32, self.int8
        timed = [("p50 (default threads)", a.latency_ms_p50, b.latency_ms_p50),
                 ("p95 (default threads)", a.latency_ms_p95, b.latency_ms_p95),
                 ("p50 (1 thread)", a.latency_1t_ms_p50, b.latency_1t_ms_p50),
                 ("p95 (1 thread)", a.latency_1t_ms_p95, b.latency_1t_ms_p95)]
        return [(f"latency {what}", f"{x:.3f} ms", f"{y:.3f} ms", _times(x / y, "faster", "slower"))
                for what, x, y in timed]


def _times(ratio: float, better: str, worse: str) -> str:
    return f"{ratio:.2f}× {better}" if ratio >= 1 else f"{1 / ratio:.2f}× {worse}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.2f} %"


# --- reading models -------------------------------------------------------------------------

def read_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX model or say clearly that the file is not one."""
    if not path.is_file():
        raise QuantizeError(f"{path} does not exist or is not a file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf and onnx raise many types on a file that is not ONNX
        raise QuantizeError(f"{path} is not an ONNX model ({type(exc).__name__}); export the model "
                            "to ONNX first (e.g. torch.onnx.export)") from None
    if not model.graph.node or not model.opset_import:
        raise QuantizeError(f"{path} is not an ONNX model (it holds no graph); export the model to "
                            "ONNX first (e.g. torch.onnx.export)")
    return model


def opset_of(model: onnx.ModelProto) -> int:
    """The model's default-domain (ai.onnx) opset."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def input_spec_of(model: onnx.ModelProto) -> InputSpec | None:
    """Describe the first input as an image input, or None if it is not [N,C,H,W]/[N,H,W,C]."""
    initializers = {i.name for i in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in initializers), None)
    if first is None or first.type.tensor_type.elem_type not in _DTYPES:
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in first.type.tensor_type.shape.dim]
    if len(dims) != 4:
        return None
    if dims[1] in (1, 3) and dims[2] and dims[3]:
        layout, channels, height, width = "NCHW", dims[1], dims[2], dims[3]
    elif dims[3] in (1, 3) and dims[1] and dims[2]:
        layout, channels, height, width = "NHWC", dims[3], dims[1], dims[2]
    else:
        return None
    return InputSpec.model_validate({"name": first.name, "layout": layout, "height": height, "width": width,
                                     "channels": channels,
                                     "dtype": _DTYPES[first.type.tensor_type.elem_type]})


def _manifest_beside(model: Path) -> Manifest | None:
    """The checked manifest of `model`: `<stem>.manifest.json`, else `<name>.manifest.json`, else None."""
    if manifest_path(model).exists():
        return load_package(model)
    other = model.with_name(f"{model.name}.manifest.json")
    if not other.exists():
        return None
    try:
        manifest = Manifest.model_validate_json(other.read_bytes())
    except ValidationError as exc:
        raise QuantizeError(f"{other} is not a valid manifest: {_errors(exc)}") from None
    if manifest.size_bytes != model.stat().st_size or manifest.sha256 != sha256_file(model):
        raise QuantizeError(f"{other.name} does not describe {model.name} (size or sha256 differ); "
                            "re-create the manifest for this file")
    return manifest


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


def _session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session; `threads` 0 leaves ONNX Runtime's default (one per physical core)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's warnings about unused initializers are noise here
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types, all meaning "cannot run this"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        raise QuantizeError(f"ONNX Runtime cannot load {path.name}: {first_line}") from None


# --- images ---------------------------------------------------------------------------------

def image_files(folder: Path) -> list[Path]:
    """Every image under `folder`, recursively, in a stable order."""
    if not folder.is_dir():
        raise QuantizeError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QuantizeError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put a few "
                            "hundred typical input pictures there")
    return files


def load_image(path: Path, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """One image as a batch-of-1 input tensor, prepared the way the agent prepares requests."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except Exception as exc:  # Pillow's decoders raise many types on corrupt data
        raise QuantizeError(f"{path} is not a readable image ({type(exc).__name__}); replace or remove "
                            "it") from None
    resized = image.convert("RGB" if spec.channels == 3 else "L").resize(
        (spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized).reshape(spec.height, spec.width, spec.channels)
    tensor = _normalise(pixels, spec, norm)
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[np.newaxis])


def _normalise(pixels: np.ndarray, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """x' = (x * scale - mean) / std per channel, as agent/models/preprocess.py does."""
    if spec.dtype == "uint8":
        return pixels.astype(np.uint8)
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    values: np.ndarray = (pixels.astype(np.float32) * np.float32(norm.scale) - mean) / std
    if spec.dtype == "int8":
        rounded: np.ndarray = np.rint(values)
        return rounded.clip(-128, 127).astype(np.int8)
    return values.astype(spec.dtype)


def _folder_labels(folder: Path, files: Sequence[Path], labels: Sequence[str]) -> list[int] | None:
    """Class indices from a folder-per-label layout (`<label>/<image>`), or None if not labelled."""
    parts = [f.relative_to(folder).parts for f in files]
    if any(len(p) != 2 for p in parts):
        return None
    names = [p[0] for p in parts]
    index = {label: i for i, label in enumerate(labels)}
    if index and all(name in index for name in names):
        return [index[name] for name in names]
    if all(name.isdigit() for name in names):
        return [int(name) for name in names]
    return None


def _spread(files: Sequence[Path], limit: int) -> list[Path]:
    """At most `limit` files taken evenly across the sorted list, so every class folder is seen."""
    if len(files) <= limit:
        return list(files)
    return [files[i * len(files) // limit] for i in range(limit)]


class _Tensors(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
    def __init__(self, name: str, tensors: Sequence[np.ndarray]) -> None:
        self._name = name
        self._items: Iterator[np.ndarray] = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._items, None)
        return None if tensor is None else {self._name: tensor}


# --- quantizing -----------------------------------------------------------------------------

def quantize_model(src: Path, dst: Path, mode: Mode, calibration: Path | None = None, *,
                   per_channel: bool = True, reduce_range: bool = False, method: Method = "minmax",
                   max_images: int = 300, evaluation: Path | None = None, seed: int = 0,
                   runs: int = 100) -> QuantizeResult:
    """Quantize `src` to `dst` and write its manifest beside it; `dst` is replaced only on success.

    `calibration`: a folder of images (static mode only). `evaluation`: an optional image folder
    (folder-per-label for accuracy) whose comparison fills the manifest's figures.
    """
    if mode not in ("static", "dynamic"):
        raise QuantizeError(f"mode must be 'static' or 'dynamic', not {mode!r}")
    if dst.resolve() == src.resolve():
        raise QuantizeError(f"the output {dst} would overwrite the input; choose another name")
    model = read_model(src)
    source = _manifest_beside(src)
    spec = source.input if source else input_spec_of(model)
    _check_input_name(model, spec)
    tensors = _calibration_tensors(calibration, spec, source.normalisation if source else Normalisation(),
                                   max_images) if mode == "static" else []
    if evaluation is not None:
        image_files(evaluation)  # a wrong folder should fail before minutes of work, not after
    notes = ["dynamic mode ignores the calibration images"] if mode == "dynamic" and calibration else []
    with tempfile.TemporaryDirectory(prefix="kitfleet-quantize-") as scratch, _staged(dst) as staged:
        _quantize(_prepare(model, Path(scratch), notes), staged, spec, tensors, per_channel=per_channel,
                  reduce_range=reduce_range, method=method)
        report = compare(src, staged, evaluation, runs=runs)
        report = dataclasses.replace(report, int8=dataclasses.replace(report.int8, path=dst))
        manifest = _derived_manifest(src, staged, source, spec, mode, report, seed, notes)
    where = _write_manifest(dst, manifest) if manifest else None
    return QuantizeResult(model=dst, manifest_path=where, manifest=manifest, mode=mode,
                          source_opset=opset_of(model), opset=opset_of(read_model(dst)),
                          calibration_images=len(tensors), report=report, notes=tuple(notes))


def _check_input_name(model: onnx.ModelProto, spec: InputSpec | None) -> None:
    names = [i.name for i in model.graph.input]
    if spec is not None and spec.name not in names:
        raise QuantizeError(f"the manifest names input {spec.name!r}, the model's inputs are {names}; "
                            "correct input.name in the manifest")


def _quantize(prepared: Path, staged: Path, spec: InputSpec | None, tensors: Sequence[np.ndarray], *,
              per_channel: bool, reduce_range: bool, method: Method) -> None:
    """Static (QDQ, uint8 activations, int8 weights) when there are calibration tensors, else dynamic."""
    try:
        if tensors:
            assert spec is not None  # calibration tensors exist only for an image input
            quantize_static(str(prepared), str(staged), _Tensors(spec.name, tensors),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=_METHODS[method],
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        else:
            quantize_dynamic(str(prepared), str(staged), per_channel=per_channel,
                             reduce_range=reduce_range, weight_type=QuantType.QInt8)
    except Exception as exc:  # the quantizer fails on graphs it does not support with many types
        raise QuantizeError(f"ONNX Runtime could not quantize the model: {type(exc).__name__}: {exc}; "
                            "try the other mode, or an export with a newer opset") from exc
    _drop_unused_opsets(staged)


def _calibration_tensors(folder: Path | None, spec: InputSpec | None, norm: Normalisation,
                         limit: int) -> list[np.ndarray]:
    if spec is None:
        raise QuantizeError("static quantization needs an image input ([N, 1|3, H, W] or [N, H, W, 1|3] "
                            "with fixed H and W), or a manifest beside the model that describes it")
    if folder is None:
        raise QuantizeError("static quantization needs calibration images: give a folder of a few "
                            "hundred typical inputs, or use dynamic mode")
    return [load_image(path, spec, norm) for path in _spread(image_files(folder), limit)]


def _prepare(model: onnx.ModelProto, scratch: Path, notes: list[str]) -> Path:
    """Upgrade old opsets, then infer shapes and fold constants as ONNX Runtime recommends."""
    upgraded = scratch / "upgraded.onnx"
    onnx.save(_upgraded(model, notes), str(upgraded))
    prepared = scratch / "prepared.onnx"
    try:
        quant_pre_process(str(upgraded), str(prepared))
    except Exception as exc:  # symbolic shape inference gives up on some graphs; quantize as it is
        notes.append(f"shape inference and pre-optimisation skipped ({type(exc).__name__})")
        return upgraded
    return prepared


def _drop_unused_opsets(path: Path) -> None:
    """Pre-processing declares every domain ONNX Runtime knows; older runtimes refuse unknown versions."""
    model = onnx.load(str(path))
    used = {node.domain for node in _all_nodes(model.graph)} | {"", "ai.onnx"}
    kept = [o for o in model.opset_import if o.domain in used]
    if len(kept) < len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(kept)
        onnx.save(model, str(path))


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            subgraphs = [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]
            for subgraph in subgraphs:
                yield from _all_nodes(subgraph)


def _upgraded(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    opset = opset_of(model)
    if opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises plain RuntimeErrors naming the op it cannot move
        raise QuantizeError(f"cannot upgrade the model from opset {opset} to {MIN_OPSET} ({exc}); "
                            f"re-export it with opset_version={MIN_OPSET} or later") from None
    notes.append(f"upgraded from opset {opset} to {MIN_OPSET}")
    return upgraded


@contextlib.contextmanager
def _staged(dst: Path) -> Iterator[Path]:
    """A temporary path beside `dst` that replaces `dst` atomically when the block succeeds."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(handle)
    staged = Path(name)
    staged.chmod(dst.stat().st_mode & 0o777 if dst.exists() else 0o644)  # mkstemp makes it 0600
    try:
        yield staged
        with staged.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(staged, dst)
    finally:
        staged.unlink(missing_ok=True)


# --- manifests ------------------------------------------------------------------------------

def golden_for(model: Path, dtype: str, precision: Precision, seed: int = 0, count: int = 16) -> Golden:
    """The self-check the agent runs before install, computed here with ONNX Runtime."""
    session = _session(model)
    outputs = session.run(None, {session.get_inputs()[0].name: _seeded_input(session, dtype, seed)})
    values = {o.name: np.asarray(v).ravel()[:count].astype(float).tolist()
              for o, v in zip(session.get_outputs(), outputs, strict=True)}
    peak = max((abs(x) for row in values.values() for x in row), default=1.0)
    # INT8 kernels differ between CPUs (VNNI, AVX2, ARM dot-product) by a few quantization steps
    atol = (0.1 if precision == "int8" else 1e-3) * max(1.0, peak)
    return Golden(seed=seed, outputs=values, atol=atol)


def _derived_manifest(src: Path, model: Path, source: Manifest | None, spec: InputSpec | None,
                      mode: Mode, report: Report, seed: int, notes: list[str]) -> Manifest | None:
    """The quantized `model`'s manifest: the source's (or a minimal one), as INT8, with new figures."""
    if spec is None:
        notes.append("no manifest written: the input is not an image, which a manifest cannot describe")
        return None
    if source is None:
        notes.append(f"{src.name} has no manifest: wrote a minimal one (task raw); edit its name, task, "
                     "labels and normalisation before deploying")
    base: dict[str, Any] = source.model_dump() if source else {
        "name": _safe_name(src.stem), "version": "1", "task": "raw", "input": spec.model_dump()}
    base.update(
        version=f"{base['version'][:27]}-int8", precision="int8", sha256=sha256_file(model),
        size_bytes=model.stat().st_size, figures=_figures(report),
        golden=golden_for(model, spec.dtype, "int8", seed).model_dump(),
        source_model=f"{src.name} (sha256 {sha256_file(src)[:16]}), {mode} INT8 by kitfleet")
    return Manifest.model_validate(base)


def _write_manifest(model: Path, manifest: Manifest) -> Path:
    where = manifest_path(model)
    with _staged(where) as staged:
        staged.write_text(manifest.model_dump_json(indent=2) + "\n")
    return where


def _safe_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64]
    return name or "model"


def _figures(report: Report) -> dict[str, float]:
    int8, fp32 = report.int8, report.fp32
    figures = {"latency_ms_p50": int8.latency_ms_p50, "latency_ms_p95": int8.latency_ms_p95,
               "latency_1t_ms_p50": int8.latency_1t_ms_p50, "fp32_latency_ms_p50": fp32.latency_ms_p50,
               "fp32_latency_1t_ms_p50": fp32.latency_1t_ms_p50, "speed_ratio_vs_fp32": report.speed_ratio,
               "speed_ratio_1t_vs_fp32": report.speed_ratio_1t}
    if report.int8.accuracy_top1 is not None and report.fp32.accuracy_top1 is not None:
        figures.update(accuracy_top1=report.int8.accuracy_top1, fp32_accuracy_top1=report.fp32.accuracy_top1)
    if report.agreement_top1 is not None:
        figures["agreement_top1_vs_fp32"] = report.agreement_top1
    return {key: round(value, 4) for key, value in figures.items()}


# --- comparing ------------------------------------------------------------------------------

def compare(fp32: Path, int8: Path, images: Path | None = None, labels: Sequence[str] | None = None, *,
            runs: int = 200, warmup: int = 20) -> Report:
    """Time both models on this machine (default threads and one thread) and compare their outputs.

    Outputs are compared on `images` (a seeded random input without). Accuracy needs a
    folder-per-label `images`; `labels` names the model's classes in score order (by default the
    manifest's labels, else the folder's labels.txt, else numeric folder names as class indices).
    """
    sessions = (_session(fp32), _session(int8))
    manifest = _manifest_beside(fp32) or _manifest_beside(int8)
    spec = manifest.input if manifest else input_spec_of(read_model(fp32))
    name = sessions[0].get_inputs()[0].name
    probe = _seeded_input(sessions[0], spec.dtype if spec else "float32", 0)
    if images is None:
        outputs, truth = [[s.run(None, {name: probe})[0] for s in sessions]], None
    else:
        outputs, truth = _outputs_on(images, sessions, spec, manifest, labels)
    single = (_session(fp32, threads=1), _session(int8, threads=1))
    timings = list(zip(_latencies(sessions, name, probe, runs, warmup),
                       _latencies(single, name, probe, runs, warmup), strict=True))
    return _report((fp32, int8), timings, outputs, truth, runs, images=0 if images is None else len(outputs))


def _outputs_on(folder: Path, sessions: Sequence[ort.InferenceSession], spec: InputSpec | None,
                manifest: Manifest | None, labels: Sequence[str] | None,
                ) -> tuple[list[list[np.ndarray]], list[int] | None]:
    """First outputs of each session per image in `folder`, and the images' class indices if known."""
    if spec is None:
        raise QuantizeError("cannot feed images to this model: its input is not an image with fixed "
                            "height and width, and no manifest beside it describes one")
    files = image_files(folder)
    names = list(labels or (manifest.labels if manifest else []) or _listed_labels(folder))
    norm = manifest.normalisation if manifest else Normalisation()
    name = sessions[0].get_inputs()[0].name
    tensors = (load_image(path, spec, norm) for path in files)
    outputs = [[s.run(None, {name: tensor})[0] for s in sessions] for tensor in tensors]
    return outputs, _folder_labels(folder, files, names)


def _listed_labels(folder: Path) -> list[str]:
    """Class names from `labels.txt` (one a line) in an image folder, if it has one."""
    listed = folder / "labels.txt"
    if not listed.is_file():
        return []
    return [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]


def latency_ms(model: Path, dtype: str = "float32", runs: int = 200, warmup: int = 20) -> tuple[float, float]:
    """p50 and p95 milliseconds of one batch-1 run of `model` on this machine (seeded random input)."""
    session = _session(model)
    probe = _seeded_input(session, dtype, 0)
    (times,) = _latencies([session], session.get_inputs()[0].name, probe, runs, warmup)
    return _ms(times, 50), _ms(times, 95)


def _seeded_input(session: ort.InferenceSession, dtype: str, seed: int) -> np.ndarray:
    """`default_rng(seed).random(shape)` for the first input, free dimensions set to 1 (as the agent does)."""
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in session.get_inputs()[0].shape]
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _latencies(sessions: Sequence[ort.InferenceSession], name: str, tensor: np.ndarray, runs: int,
               warmup: int) -> list[np.ndarray]:
    """Milliseconds per run of each session, in alternating blocks so both see the same machine load.

    Not alternating run by run: ONNX Runtime's worker threads spin a while after each run and
    would slow down the other session, the multi-threaded FP32 one most.
    """
    feed = {name: tensor}
    for session in sessions:
        for _ in range(warmup):
            session.run(None, feed)
    wanted = max(runs, 1)
    times: list[list[float]] = [[] for _ in sessions]
    while len(times[-1]) < wanted:
        for session, row in zip(sessions, times, strict=True):
            session.run(None, feed)  # untimed: the other session's threads settle meanwhile
            for _ in range(min(_BLOCK, wanted - len(row))):
                start = time.perf_counter()
                session.run(None, feed)
                row.append(1000 * (time.perf_counter() - start))
    return [np.asarray(row) for row in times]


def _report(paths: tuple[Path, Path], timings: Sequence[tuple[np.ndarray, np.ndarray]],
            outputs: list[list[np.ndarray]], truth: list[int] | None, runs: int, *, images: int) -> Report:
    """`timings`: per model, milliseconds with default threads and with one thread."""
    reference, quantized = (np.stack([pair[i] for pair in outputs]).astype(np.float64) for i in (0, 1))
    top = (_top1(reference), _top1(quantized))
    sides = [ModelFigures(path=path, precision=precision, size_bytes=path.stat().st_size,
                          latency_ms_p50=_ms(default, 50), latency_ms_p95=_ms(default, 95),
                          latency_1t_ms_p50=_ms(single, 50), latency_1t_ms_p95=_ms(single, 95),
                          accuracy_top1=_matching(best, truth) if images else None)
             for path, precision, (default, single), best
             in zip(paths, ("fp32", "int8"), timings, top, strict=True)]
    agreement = _matching(top[0], None if top[1] is None else top[1].tolist()) if images else None
    return Report(fp32=sides[0], int8=sides[1], images=images,
                  labelled=sides[0].accuracy_top1 is not None, agreement_top1=agreement,
                  mean_abs_error=float(np.mean(np.abs(reference - quantized))), runs=runs)


def _ms(times: np.ndarray, quantile: int) -> float:
    return float(np.percentile(times, quantile))


def _top1(outputs: np.ndarray) -> np.ndarray | None:
    """Best class per image, when each image gave one row of class scores ([1, classes])."""
    if outputs.ndim != 3 or outputs.shape[1] != 1:
        return None
    best: np.ndarray = outputs.argmax(axis=-1).ravel()
    return best


def _matching(predicted: np.ndarray | None, expected: Sequence[int] | None) -> float | None:
    """The fraction of predictions equal to `expected`; None when either is unknown."""
    if predicted is None or expected is None:
        return None
    return float(np.mean(predicted == np.asarray(expected)))
