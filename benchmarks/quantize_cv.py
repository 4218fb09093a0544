"""The ResNet-18-class part of `benchmarks/quantize.py`: quantize it, time both, with and without a hog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from agent.toolkit.quantadvice import recommend
from app.fleet.quantize import quantize_model
from app.fleet.quantreport import compare, percentiles, table, time_models, times_faster
from benchmarks._hog import hog_on_one_core, load
from benchmarks.cvnet import resnet18_like

__all__ = ["load", "run_cv"]


def run_cv(scratch: Path, size: int, runs: int) -> None:
    """Quantize the network statically on seeded pictures, then time FP32 against INT8."""
    fp32 = resnet18_like(scratch / "resnet18-like.onnx", size=size)
    pictures = _pictures(scratch / "pictures", size)
    print(f"\nResNet-18-class network, {size}x{size}, static INT8 (7-bit weights), {load()}")
    result = quantize_model(fp32, scratch / "resnet18-like-int8.onnx", "static", pictures, runs=3)
    report = compare(
        fp32,
        result.model,
        pictures,
        runs=3,
        warmup=1,
        input_spec=result.manifest.input if result.manifest else None,
    )
    rows = [report.rows()[0], report.rows()[1]]
    ratios: dict[tuple[bool, int], float] = {}
    for hog in (False, True):
        with hog_on_one_core(hog) as where:
            for threads in (0, 1):
                timed, ratios[hog, threads] = _timed_rows(fp32, result.model, threads, runs, where)
                rows += timed
            print(f"  {where}: {load()}")
    rows.append(("top-1 agreement (pictures)", "", "", f"{100 * (report.agreement_top1 or 0):.1f} %"))
    print("\n".join(table(rows)))
    measured = dataclasses.replace(report.measured(), speed_ratio=ratios[False, 0])  # this run's p50, not 3
    print(f"\nas `kitfleet quantize` would put it: {recommend(measured).text()}")
    if result.kept_float:
        print(f"left FP32: {', '.join(str(node) for node in result.kept_float)}")


def _timed_rows(
    fp32: Path, int8: Path, threads: int, runs: int, where: str
) -> tuple[list[tuple[str, ...]], float]:
    """The p50/p95 rows, and the p50 speed ratio (FP32 time / INT8 time)."""
    times = time_models([fp32, int8], threads=threads, runs=runs, warmup=2)
    (a50, a95), (b50, b95) = percentiles(times[0]), percentiles(times[1])
    label = f"{where}, {'1 thread' if threads == 1 else 'default threads'}"
    p50 = (
        f"{label}: p50",
        f"{a50:.1f} ms",
        f"{b50:.1f} ms",
        f"{times_faster(a50 / b50)} (INT8/FP32 {b50 / a50:.2f})",
    )
    p95 = (f"{label}: p95", f"{a95:.1f} ms", f"{b95:.1f} ms", times_faster(a95 / b95))
    return [p50, p95], a50 / b50


def _pictures(folder: Path, size: int, count: int = 16) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(11)
    for n in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{n}.png")
    return folder
