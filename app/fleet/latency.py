"""Milliseconds per run of ONNX models on this machine, for the quantization report and benchmarks.

Latency is measured in alternating blocks, never run by run: ONNX Runtime's worker threads spin a
while after each run and would slow down the other session, the multi-threaded FP32 one most.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.wire import InputSpec
from app.fleet.onnxmodel import cpu_session, seeded_input

__all__ = ["latencies", "latency_ms", "ms", "percentiles", "time_models"]

_BLOCK = 25  # timed runs of one model before switching to the other


def time_models(
    models: Sequence[Path],
    *,
    batch: int = 1,
    threads: int = 0,
    runs: int = 200,
    warmup: int = 20,
    spec: InputSpec | None = None,
) -> list[np.ndarray]:
    """Milliseconds per run of each model on the same seeded input of `batch` images, interleaved."""
    sessions = [cpu_session(path, threads) for path in models]
    probe = seeded_input(sessions[0], spec.dtype if spec else "float32", 0, spec=spec, batch=batch)
    return latencies(sessions, sessions[0].get_inputs()[0].name, probe, runs, warmup)


def latency_ms(model: Path, dtype: str = "float32", runs: int = 200, warmup: int = 20) -> tuple[float, float]:
    """p50 and p95 milliseconds of one batch-1 run of `model` on this machine (seeded random input)."""
    session = cpu_session(model)
    probe = seeded_input(session, dtype, 0)
    (times,) = latencies([session], session.get_inputs()[0].name, probe, runs, warmup)
    return percentiles(times)


def latencies(
    sessions: Sequence[ort.InferenceSession], name: str, tensor: np.ndarray, runs: int, warmup: int
) -> list[np.ndarray]:
    """Milliseconds per run of each session, in alternating blocks so both see the same machine load."""
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


def ms(times: np.ndarray, quantile: int) -> float:
    return float(np.percentile(times, quantile))


def percentiles(times: np.ndarray) -> tuple[float, float]:
    """p50 and p95 of a run of milliseconds."""
    return ms(times, 50), ms(times, 95)
