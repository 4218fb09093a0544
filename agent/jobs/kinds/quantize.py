"""`quantize`: FP32 → INT8 (dynamic, weights per tensor or per channel) on the kit itself,
then a side-by-side report (size, latency, top-1 agreement on seeded random inputs), the nodes
left FP32, and the same recommendation `kitfleet quantize` words, measured where it will run.

The same pipeline as `kitfleet quantize` on the laptop (`agent.toolkit.quantize`: opset upgrade,
ONNX Runtime's pre-processing, then the quantizer). Unlike the laptop, the kit knows which CPU
runs the result, so its own CPU facts choose the weight range: 7 bits on x86 without VNNI, where
u8×s8 kernels saturate (signed weights; a Conv model's unsigned weights, the toolkit's default as
faster and run by every ONNX Runtime, would not saturate, so 7 bits there only cost precision).
The agent installs the result as a new, inactive version (`agent/jobs/service.py`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.errors import Refusal
from agent.facts.cpu import int8_needs_reduced_range_here
from agent.jobs.errors import PermanentFailure
from agent.jobs.kinds._model import load
from agent.jobs.report import Reporter
from agent.toolkit.hashing import sha256_file
from agent.toolkit.quantadvice import Measured, recommend
from agent.toolkit.sessions import open_session
from agent.wire import Manifest

if TYPE_CHECKING:  # the quantizer imports onnx, which a kit may lack: only the job that runs needs it
    from agent.toolkit.quantize import KeptFloat

MODEL, MANIFEST = "model.onnx", "manifest.json"
COMPARE_RUNS = 20


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    params = spec["params"]
    manifest, fp32 = load(spec, report)
    out = report.results / MODEL
    reduced = int8_needs_reduced_range_here()  # the kit knows its CPU: 7-bit weights only where needed
    bits = 7 if reduced else 8
    notes: list[str] = []
    kept = _quantize(Path(spec["model"]["path"]), out, params.get("per_channel", False), reduced, notes)
    report.spend(out.stat().st_size)
    report.progress(1, 2)
    int8 = open_session(out, spec["threads"])[0]
    quantized = manifest.model_copy(
        update={
            "version": params.get("output_version") or f"{manifest.version}-int8",
            "precision": "int8",
            "sha256": sha256_file(out),
            "size_bytes": out.stat().st_size,
            "source_model": f"{manifest.name} {manifest.version} ({manifest.sha256[:12]}), dynamic INT8, "
            f"{bits}-bit weights",
            "golden": None,
            "figures": {},
        }
    )
    summary = {
        "model": manifest.name,
        "from_version": manifest.version,
        "version": quantized.version,
        "sha256": quantized.sha256,
        "size_bytes": {"fp32": manifest.size_bytes, "int8": quantized.size_bytes},
        "weight_bits": bits,
        "kept_float": [{"name": k.name, "op_type": k.op_type, "reason": k.reason} for k in kept],
        "notes": notes,
        **_compare(fp32, int8, manifest),
    }
    quantized.figures = _figures(summary)
    summary["recommendation"] = _recommendation(quantized.figures)
    _verify(out, quantized)
    (report.results / MANIFEST).write_text(quantized.model_dump_json(indent=2))
    report.write_json("result.json", summary)
    report.progress(2, 2)
    return {**summary, "install": params.get("install", True)}


def _figures(summary: dict[str, Any]) -> dict[str, float]:
    """The figures `kitfleet quantize` writes too, so deploy's advice reads both the same way."""
    latency, sizes = summary["latency_ms"], summary["size_bytes"]
    return {
        "latency_ms": latency["int8"],  # the names this job wrote before, for older apps
        "agreement": summary["agreement"],
        "latency_ms_p50": latency["int8"],
        "fp32_latency_ms_p50": latency["fp32"],
        "speed_ratio_vs_fp32": round(latency["fp32"] / latency["int8"], 4),
        "size_ratio_vs_fp32": round(sizes["fp32"] / sizes["int8"], 4),
        "agreement_top1_vs_fp32": summary["agreement"],
    }


def _recommendation(figures: dict[str, float]) -> dict[str, str]:
    """Measured on this kit, so its own figures decide; no other CPU's facts are involved."""
    measured = Measured(
        precision="int8",
        speed_ratio=figures["speed_ratio_vs_fp32"],
        size_ratio=figures["size_ratio_vs_fp32"],
        agreement=figures["agreement_top1_vs_fp32"],
        where="this kit",
    )
    advice = recommend(measured)
    return {"use": advice.use, "text": advice.text()}


def _verify(path: Path, manifest: Manifest) -> None:
    from agent.models.verify import VerificationFailed, check_in_process

    try:
        check_in_process(path, manifest)
    except VerificationFailed as exc:
        raise PermanentFailure(f"the quantized model does not pass the install checks: {exc}") from None


def _quantize(
    source: Path, target: Path, per_channel: bool, reduce_range: bool, notes: list[str]
) -> list[KeptFloat]:
    """The toolkit's pipeline: unsigned weights for a model with a Conv, signed for MatMul-only."""
    try:
        import onnx

        from agent.toolkit.quantize import prepare, quantize
    except ImportError as exc:  # onnxruntime's quantizer needs the `onnx` package
        raise PermanentFailure(f"this kit cannot quantize: {exc}; install the onnx package") from None
    with tempfile.TemporaryDirectory(prefix="quantize-", dir=target.parent) as scratch:
        try:
            prepared = prepare(onnx.load(str(source)), Path(scratch), notes)
            return quantize(
                prepared,
                target,
                None,
                [],
                per_channel=per_channel,
                reduce_range=reduce_range,
                method="minmax",
                notes=notes,
            )
        except Refusal as exc:
            raise PermanentFailure(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None


def _compare(fp32: Any, int8: Any, manifest: Manifest) -> dict[str, Any]:
    spec = manifest.input
    shape = (
        (1, spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (1, spec.height, spec.width, spec.channels)
    )
    rng = np.random.default_rng(0)
    inputs = [rng.random(shape).astype(spec.dtype) for _ in range(COMPARE_RUNS)]
    first, second, agree = [], [], 0
    for tensor in inputs:
        a, ms_a = _timed(fp32, spec.name, tensor)
        b, ms_b = _timed(int8, spec.name, tensor)
        first.append(ms_a)
        second.append(ms_b)
        agree += int(np.argmax(a) == np.argmax(b))
    median = {"fp32": float(np.median(first)), "int8": float(np.median(second))}
    return {
        "latency_ms": {k: round(v, 4) for k, v in median.items()},
        "agreement": round(agree / len(inputs), 4),
    }


def _timed(session: Any, name: str, tensor: np.ndarray) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    output = session.run(None, {name: tensor})[0]
    return np.asarray(output), (time.perf_counter() - started) * 1000
