"""Dynamic INT8 with signed (u8×s8) against unsigned (u8×u8) weights, side by side with FP32.

`kitfleet quantize` stores unsigned Conv weights unless signed ones are asked for (they need ONNX
Runtime 1.24+; Python 3.10's 1.23 lacks the kernel), and signed weights for MatMul-only models.
This prints both choices on this machine's runtime (which must have both ConvInteger kernels): a
ResNet-18-class network (`benchmarks/cvnet.py`, seeded weights) and a MatMul-only MLP (seeded
weights, 64 rows through four 512-wide layers, as a small transformer block's projections), each
model timed in alternating blocks on one seeded input, with top-1 agreement with FP32.
Run: .venv/bin/python -m benchmarks.conv_weights [--size 96] [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

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


def _agreement(reference: ort.InferenceSession, other: ort.InferenceSession, shape: tuple[int, ...]) -> float:
    """Top-1 agreement per output row on 20 seeded inputs."""
    rng = np.random.default_rng(3)
    name = reference.get_inputs()[0].name
    same, rows = 0, 0
    for _ in range(20):
        tensor = rng.random(shape, dtype=np.float32)
        a, b = reference.run(None, {name: tensor})[0], other.run(None, {name: tensor})[0]
        same += int(np.sum(np.argmax(a, -1) == np.argmax(b, -1)))
        rows += int(np.prod(a.shape[:-1]))
    return same / rows


def _mlp(path: Path, rows: int = 64, width: int = 512, layers: int = 4) -> Path:
    """A MatMul-only network: `layers` × (MatMul + bias + ReLU), seeded He-scaled weights."""
    rng = np.random.default_rng(1)
    nodes, weights, x = [], [], "x"
    for i in range(layers):
        w = rng.standard_normal((width, width)).astype(np.float32) * np.float32(np.sqrt(2 / width))
        weights += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        x = f"a{i}"
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [rows, width])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _print(title: str, p50: dict[str, float], agree: dict[str, float]) -> None:
    print(title)
    for name, ms in p50.items():
        extra = f", top-1 agreement {agree[name]:.2f}" if name in agree else ""
        print(f"  {name:<16} p50 {ms:8.2f} ms  ({p50['fp32'] / ms:.2f}x FP32's speed{extra})")
    names = [name for name in p50 if name != "fp32"]
    print(f"  unsigned / signed latency: {p50[names[1]] / p50[names[0]]:.2f}x")


def _matmul_only(folder: Path, runs: int) -> None:
    """Both weight types through ONNX Runtime's quantizer as kitfleet calls it (7-bit weights)."""
    fp32 = _mlp(folder / "mlp.onnx")
    paths = {"int8 s8 weights": folder / "mlp-s8.onnx", "int8 u8 weights": folder / "mlp-u8.onnx"}
    for (_, path), kind in zip(paths.items(), (QuantType.QInt8, QuantType.QUInt8), strict=True):
        quantize_dynamic(str(fp32), str(path), per_channel=False, reduce_range=True, weight_type=kind)
    sessions = {"fp32": _session(fp32), **{name: _session(path) for name, path in paths.items()}}
    shape = (64, 512)
    tensor = np.random.default_rng(0).random(shape, dtype=np.float32)
    agree = {name: _agreement(sessions["fp32"], sessions[name], shape) for name in paths}
    _print(
        "MatMul-only MLP, 64x512 through four 512x512 MatMul (MatMulInteger):",
        _p50s(sessions, tensor, runs),
        agree,
    )


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
        signed = quantize_model(fp32, folder / "s8.onnx", "dynamic", runs=3, signed_conv=True).model
        unsigned = quantize_model(fp32, folder / "u8.onnx", "dynamic", runs=3).model
        sessions = {
            "fp32": _session(fp32),
            "int8 s8 weights": _session(signed),
            "int8 u8 weights": _session(unsigned),
        }
        shape = (1, 3, args.size, args.size)
        tensor = np.random.default_rng(0).random(shape, dtype=np.float32)
        p50 = _p50s(sessions, tensor, args.runs)
        agree = {
            name: _agreement(sessions["fp32"], sessions[name], shape) for name in sessions if name != "fp32"
        }
        print(f"onnxruntime {ort.__version__}, 1 thread, load {os.getloadavg()[0]:.1f}")
        _print(f"ResNet-18-class, {args.size}x{args.size} (ConvInteger):", p50, agree)
        _matmul_only(folder, args.runs)


if __name__ == "__main__":
    main()
