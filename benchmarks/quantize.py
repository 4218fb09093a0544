"""INT8 vs FP32 on the bundled digits classifier and on a ResNet-18-class network: latency, size,
agreement, accuracy, and the machine's load, also with a CPU hog on one core beside the models.

Goal (issue 3), on a CPU with INT8 dot-product instructions (VNNI/AMX): INT8 >= 1.8x faster with at
most 1 point of top-1 lost (anchor: ONNX model zoo ResNet50-int8, 1.82x and -0.27 points). Both
models run on the same seeded input with the same thread setting, in alternating blocks of runs so
they share the machine's load alike. Accuracy is on resources/datasets/digits-eval (400 held-out
images). The bundled INT8 model is used unless --calibration makes a fresh one from the FP32 model.
The digits CNN is too small for the ratio to mean much for real vision models, so a ResNet-18-class
network (`benchmarks/cvnet.py`, seeded weights, nothing downloaded) is quantized statically here and
timed the same way, then again with a busy-looping process pinned to one core (a kit doing other
work); each section prints `os.getloadavg()` and the recommendation `kitfleet quantize` would give.
Run: .venv/bin/python -m benchmarks.quantize [--runs 300] [--batch 32] [--calibration DIR]
     [--cv-size 160] [--cv-runs 20] [--no-cv]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.facts.cpu import collect as cpu_facts
from app.fleet.models import load_package
from app.fleet.quantize import quantize_model
from app.fleet.quantreport import compare, percentiles, table, time_models, times_faster
from benchmarks.quantize_cv import load, run_cv
from resources import datasets_dir, models_dir

SPEED_GOAL = 1.8
POINTS_GOAL = 1.0


@dataclass(frozen=True)
class Timing:
    """p50/p95 milliseconds of both models at one batch size and thread setting."""

    batch: int
    threads: int
    fp32: tuple[float, float]
    int8: tuple[float, float]

    @property
    def where(self) -> str:
        return f"batch {self.batch}, {'1 thread' if self.threads == 1 else 'default threads'}"

    @property
    def ratio(self) -> float:
        return self.fp32[0] / self.int8[0]

    def rows(self) -> list[tuple[str, ...]]:
        (a50, a95), (b50, b95) = self.fp32, self.int8
        return [
            (f"{self.where}: p50", f"{a50:.3f} ms", f"{b50:.3f} ms", times_faster(a50 / b50)),
            (f"{self.where}: p95", f"{a95:.3f} ms", f"{b95:.3f} ms", times_faster(a95 / b95)),
            (
                f"{self.where}: images/s",
                f"{1000 * self.batch / a50:,.0f}",
                f"{1000 * self.batch / b50:,.0f}",
                "",
            ),
        ]


def _timing(fp32: Path, int8: Path, batch: int, threads: int, runs: int) -> Timing:
    times = time_models(
        [fp32, int8],
        batch=batch,
        threads=threads,
        runs=runs,
        warmup=max(5, runs // 10),
        spec=load_package(fp32).input,
    )
    return Timing(batch, threads, percentiles(times[0]), percentiles(times[1]))


def _verdicts(timings: list[Timing], points: float) -> list[str]:
    """One line per goal: the batch-1 ratios, the best ratio seen, the accuracy lost."""
    batch1 = [t.ratio for t in timings if t.batch == 1]
    best = max(timings, key=lambda t: t.ratio)
    speed = (
        "met"
        if min(batch1) >= SPEED_GOAL
        else f"met only at {best.where}"
        if best.ratio >= SPEED_GOAL
        else "missed"
    )
    accuracy = "met" if -points <= POINTS_GOAL else "missed"
    return [
        f"speed goal >= {SPEED_GOAL:.1f}x (p50): batch 1 {min(batch1):.2f}x-{max(batch1):.2f}x, "
        f"best {best.ratio:.2f}x ({best.where}) -> {speed}",
        f"accuracy goal <= {POINTS_GOAL:.0f} point lost: {points:+.2f} points -> {accuracy}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs at batch 1 (a quarter at --batch)")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch")
    parser.add_argument("--calibration", type=Path, help="quantize the FP32 model afresh with these images")
    parser.add_argument(
        "--cv-size", type=int, default=160, help="the ResNet-18-class input size (224 is slow)"
    )
    parser.add_argument("--cv-runs", type=int, default=20, help="timed runs of the ResNet-18-class pair")
    parser.add_argument("--no-cv", action="store_true", help="only the digits CNN")
    args = parser.parse_args()
    fp32, int8 = models_dir() / "digits-cnn-fp32.onnx", models_dir() / "digits-cnn-int8.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        if args.calibration is not None:
            int8 = quantize_model(
                fp32, Path(scratch) / "digits-int8.onnx", "static", args.calibration, runs=5
            ).model
        _run(fp32, int8, args.runs, args.batch)
        if not args.no_cv:
            run_cv(Path(scratch), args.cv_size, args.cv_runs)


def _run(fp32: Path, int8: Path, runs: int, batch: int) -> None:
    cpu = cpu_facts()
    reason = cpu.int8.reason if cpu.int8 else "unknown"
    print(f"CPU: {cpu.model} ({cpu.logical_cores} logical cores); INT8: {reason}; {load()}")
    print(f"ONNX Runtime {ort.__version__}; numpy {np.__version__}; {fp32.name} vs {int8.name}\n")
    report = compare(fp32, int8, datasets_dir() / "digits-eval", runs=10, warmup=2)
    points = report.accuracy_delta_points
    if points is None:
        raise SystemExit("digits-eval has no labels; re-make it with packaging/models/make_classifier.py")
    rows = report.rows()[:2]  # the header naming both files, and their sizes
    timings = [
        _timing(fp32, int8, size, threads, count)
        for size, count in ((1, runs), (batch, max(20, runs // 4)))
        for threads in (0, 1)
    ]
    rows += [row for timing in timings for row in timing.rows()]
    rows += [row for row in report.rows() if row[0].startswith("top-1")]
    print("\n".join(table(rows)))
    print(
        f"\n{report.images} labelled images; latency over {runs} runs at batch 1, "
        f"{max(20, runs // 4)} at batch {batch}, interleaved in blocks\n"
    )
    print("\n".join(_verdicts(timings, points)))


if __name__ == "__main__":
    main()
