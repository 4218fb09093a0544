"""The manifest of a quantized model: the source's, as INT8 or FP16, with the new file's hash, golden and
figures (the measured ratios deploy's advice reads back).

The manifest carries the measured figures deploy's advice reads, so quantizing writes one even for a
source that had none: a minimal `raw` one, and a note on having the source's task and labels inferred
(as deploy does for a plain model) before quantizing again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from agent.toolkit.hashing import sha256_file
from agent.wire import Golden, InputSpec, Manifest, Precision
from app.fleet.onnxmodel import cpu_session, seeded_input
from app.fleet.quantreport import Report

__all__ = ["derived_manifest", "golden_for"]


def golden_for(model: Path, dtype: str, precision: Precision, seed: int = 0, count: int = 16) -> Golden:
    """The self-check the agent runs before install, computed here with ONNX Runtime."""
    session = cpu_session(model)
    outputs = session.run(None, {session.get_inputs()[0].name: seeded_input(session, dtype, seed)})
    values = {
        o.name: np.asarray(v).ravel()[:count].astype(float).tolist()
        for o, v in zip(session.get_outputs(), outputs, strict=True)
    }
    peak = max((abs(x) for row in values.values() for x in row), default=1.0)
    # INT8 kernels differ between CPUs (VNNI, AVX2, ARM dot-product) by a few quantization steps
    # FP16 on a GPU rounds differently from ONNX Runtime's CPU kernels
    atol = {"int8": 0.1, "fp16": 0.01}.get(precision, 1e-3) * max(1.0, peak)
    return Golden(seed=seed, outputs=values, atol=atol)


def derived_manifest(
    src: Path,
    model: Path,
    source: Manifest | None,
    spec: InputSpec | None,
    how: str,
    report: Report,
    seed: int,
    notes: list[str],
    precision: Precision = "int8",
) -> Manifest | None:
    """The quantized `model`'s manifest: the source's (or a minimal one), as `precision`, with new figures.

    `how` ends its `source_model`, e.g. "static INT8 by kitfleet, 7-bit weights".
    """
    if spec is None:
        notes.append(
            "no manifest written: the input is not an image of known height and width, which "
            "a manifest needs (give the input size if the model leaves it free)"
        )
        return None
    if source is None:
        notes.append(
            f"{src.name} has no manifest, so this one says task raw (a kit answers with raw outputs) "
            "and keeps the measured figures; for labels or boxes, have them inferred as `kitfleet "
            f"deploy` does for a plain model: `kitfleet models inspect {src.name} --write-manifest` "
            "(--task or --labels to correct it), then quantize again"
        )
    base: dict[str, Any] = (
        source.model_dump()
        if source
        else {"name": _safe_name(src.stem), "version": "1", "task": "raw", "input": spec.model_dump()}
    )
    base.update(
        version=f"{base['version'][:27]}-{precision}",
        precision=precision,
        sha256=sha256_file(model),
        size_bytes=model.stat().st_size,
        figures=_figures(report),
        golden=_golden(model, spec, seed, notes, precision),
        source_model=f"{src.name} (sha256 {sha256_file(src)[:16]}), {how}",
    )
    return Manifest.model_validate(base)


def _golden(
    model: Path, spec: InputSpec, seed: int, notes: list[str], precision: Precision
) -> dict[str, Any] | None:
    """The golden check, or None (with a note) when the model cannot run the agent's probe input.

    The agent probes with free dimensions set to 1: a model with a free picture size may not run on a
    1×1 picture, and a manifest without a golden is still valid.
    """
    try:
        return golden_for(model, spec.dtype, precision, seed).model_dump()
    except Exception:  # ORT fails on the probe with its own types; the manifest stays useful
        notes.append(
            "no golden check in the manifest: the model does not run on the kit's probe input "
            "(its free dimensions set to 1); the kit still checks that it loads and its "
            "signature, so deploy it as it is and try it with `kitfleet infer` once installed"
        )
        return None


def _safe_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64]
    return name or "model"


def _figures(report: Report) -> dict[str, float]:
    int8, fp32 = report.int8, report.fp32
    figures = {
        "latency_ms_p50": int8.latency_ms_p50,
        "latency_ms_p95": int8.latency_ms_p95,
        "latency_1t_ms_p50": int8.latency_1t_ms_p50,
        "fp32_latency_ms_p50": fp32.latency_ms_p50,
        "fp32_latency_1t_ms_p50": fp32.latency_1t_ms_p50,
        "speed_ratio_vs_fp32": report.speed_ratio,
        "speed_ratio_1t_vs_fp32": report.speed_ratio_1t,
        "size_ratio_vs_fp32": report.size_ratio,
    }
    if report.int8.accuracy_top1 is not None and report.fp32.accuracy_top1 is not None:
        figures.update(accuracy_top1=report.int8.accuracy_top1, fp32_accuracy_top1=report.fp32.accuracy_top1)
    if report.agreement_top1 is not None:
        figures["agreement_top1_vs_fp32"] = report.agreement_top1
    return {key: round(value, 4) for key, value in figures.items()}
