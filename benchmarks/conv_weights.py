"""Dynamic INT8 with signed (u8×s8) against unsigned (u8×u8) Conv weights, side by side with FP32.

`kitfleet quantize` stores unsigned Conv weights unless the kit's ONNX Runtime has the signed
ConvInteger kernel (1.24+; Python 3.10's 1.23 lacks it). This prints what the portable choice
costs on this machine's runtime (which must have both kernels): a ResNet-18-class network
(`benchmarks/cvnet.py`, seeded weights), the three models timed in alternating blocks on one seeded
input, and top-1 agreement with FP32 on seeded inputs.
Run: .venv/bin/python -m benchmarks.conv_weights [--size 96] [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.toolkit.int8kernels import runs_signed_conv_integer
from app.fleet.quantize import quantize_model
from benchmarks.cvnet import resnet18_like

BLOCKS = 5


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _p50s(sessions: dict[str, ort.InferenceSession], tensor: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per model, timed in alternating blocks so they share the machine's load alike."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(BLOCKS):
        for name, session in sessions.items():
            feed = {session.get_inputs()[0].name: tensor}
            for _ in range(max(1, runs // BLOCKS)):
                started = time.perf_counter()
                session.run(None, feed)
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: float(np.median(values)) for name, values in times.items()}


def _agreement(reference: ort.InferenceSession, other: ort.InferenceSession, size: int) -> float:
    rng = np.random.default_rng(3)
    name = reference.get_inputs()[0].name
    same = 0
    for _ in range(20):
        tensor = rng.random((1, 3, size, size), dtype=np.float32)
        same += int(
            np.argmax(reference.run(None, {name: tensor})[0]) == np.argmax(other.run(None, {name: tensor})[0])
        )
    return same / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    if not runs_signed_conv_integer():
        raise SystemExit(
            f"onnxruntime {ort.__version__} has no signed ConvInteger kernel: nothing to compare"
        )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        fp32 = resnet18_like(folder / "fp32.onnx", size=args.size, classes=100)
        signed = quantize_model(fp32, folder / "s8.onnx", "dynamic", runs=3, runtime=ort.__version__).model
        unsigned = quantize_model(fp32, folder / "u8.onnx", "dynamic", runs=3).model
        sessions = {
            "fp32": _session(fp32),
            "int8 s8 weights": _session(signed),
            "int8 u8 weights": _session(unsigned),
        }
        tensor = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
        p50 = _p50s(sessions, tensor, args.runs)
        print(
            f"onnxruntime {ort.__version__}, {args.size}x{args.size}, 1 thread, load {os.getloadavg()[0]:.1f}"
        )
        for name, ms in p50.items():
            agree = (
                ""
                if name == "fp32"
                else f", top-1 agreement {_agreement(sessions['fp32'], sessions[name], args.size):.2f}"
            )
            print(f"  {name:<16} p50 {ms:8.2f} ms  ({p50['fp32'] / ms:.2f}x FP32's speed{agree})")
        print(f"  unsigned / signed latency: {p50['int8 u8 weights'] / p50['int8 s8 weights']:.2f}x")


if __name__ == "__main__":
    main()
