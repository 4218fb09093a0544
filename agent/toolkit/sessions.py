"""ONNX Runtime sessions and seeded inputs, set up the same way on the kit and the laptop.

A session runs on the best execution provider the machine has, with the CPU as the fallback;
a seeded input (`numpy.random.default_rng(seed).random(shape)`) is what a manifest's golden
check feeds, so the laptop that writes the golden and the kit that checks it make the same
tensor. ONNX Runtime is imported only when a session is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

__all__ = [
    "CPU",
    "PREFERRED_PROVIDERS",
    "choose_providers",
    "default_threads",
    "open_session",
    "seeded_input",
]

CPU = "CPUExecutionProvider"
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider")


def choose_providers(available: Sequence[str]) -> list[str]:
    """The accelerators the kit has, best first, then the CPU, which is always there as a fallback."""
    return [p for p in PREFERRED_PROVIDERS if p in available] + [CPU]


def default_threads() -> int:
    """One intra-op thread per physical core: hyper-threads only contend for the same units."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def open_session(
    path: Path, threads: int, spinning: bool = True, *, cpu_only: bool = False, quiet: bool = False
) -> tuple[Any, str | None]:
    """A session on the best provider; if an accelerator fails, a CPU-only one and the reason.

    `threads` 0 leaves ONNX Runtime's default. `spinning=False` for work that shares the CPU
    with other threads (a batch job's decoders, the agent's serving): idle intra-op threads
    then sleep instead of busy-waiting for the next run. `cpu_only` for comparisons that must
    run where the laptop runs them; `quiet` keeps ORT's warnings (unused initializers) out.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if quiet:
        options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = [CPU] if cpu_only else choose_providers(ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # a missing CUDA/TensorRT library surfaces as any error type
        if providers == [CPU]:
            raise
        reason = f"{providers[0]} failed: {_first_line(exc)}"
        return ort.InferenceSession(str(path), options, providers=[CPU]), reason
    dropped = providers[0] not in session.get_providers()  # ORT may fall back quietly too
    return session, f"ONNX Runtime did not enable {providers[0]}" if dropped else None


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def seeded_input(
    model_input: Any, dtype: str, seed: int, sizes: Mapping[int, int] | None = None, batch: int = 1
) -> np.ndarray:
    """`default_rng(seed).random(shape)` for an ONNX Runtime input (its `.shape`), cast to `dtype`.

    Free dimensions become `batch` (the first) and `sizes[axis]` (height and width, say); any
    other free dimension is 1, which is what a kit feeds for a manifest's golden check.
    """
    known = sizes or {}
    shape = [
        d if isinstance(d, int) and d > 0 else (batch if axis == 0 else known.get(axis, 1))
        for axis, d in enumerate(model_input.shape)
    ]
    return np.random.default_rng(seed).random(shape).astype(dtype)
