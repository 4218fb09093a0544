"""`benchmark`: latency percentiles, throughput and peak memory of a model on this kit,
for each batch size × thread count asked for. Inputs are seeded random tensors."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import psutil

from agent.energy import DEFAULT_TDP_W, FallbackMeter
from agent.jobs.kinds._model import fixed_batch, load, model_fields
from agent.jobs.report import Reporter
from agent.wire import Manifest

MIB = 1 << 20


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    params = spec["params"]
    thread_counts = params["threads"] or [spec["threads"]]
    rows: list[dict[str, Any]] = []
    total = len(thread_counts) * len(params["batch_sizes"])
    manifest: Manifest | None = None
    # each row's energy covers its timed runs only, not the model's load or warm-up
    meter = FallbackMeter(tdp_w=float(spec.get("tdp_w", DEFAULT_TDP_W)))
    for threads in thread_counts:
        manifest, session = load(spec, report, threads)
        for batch in params["batch_sizes"]:
            rows.append(_measure(session, manifest, batch, threads, params, report, meter))
            report.progress(len(rows), total)
    assert manifest is not None
    summary = {**model_fields(manifest), "rows": rows}
    report.write_json("result.json", summary)
    return summary


def _measure(
    session: Any,
    manifest: Manifest,
    batch: int,
    threads: int,
    params: dict[str, Any],
    report: Reporter,
    meter: FallbackMeter,
) -> dict[str, Any]:
    row: dict[str, Any] = {"batch": batch, "threads": threads}
    fixed = fixed_batch(session, manifest)
    if fixed is not None and fixed != batch:
        row["skipped"] = f"the model takes batches of {fixed} only"
        report.log(f"batch {batch}: skipped, {row['skipped']}")
        return row
    feed = {manifest.input.name: _input(manifest, batch)}
    for _ in range(params["warmup"]):
        session.run(None, feed)
    token = meter.start()
    with _PeakRss() as peak:
        times = []
        for _ in range(params["runs"]):
            started = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - started) * 1000)
    row.update(_stats(times, batch), peak_rss_mb=round(peak.value / MIB, 1))
    energy = meter.stop(token)
    row["joules_per_1000_inferences"] = round(energy.joules * 1000 / (batch * params["runs"]), 4)
    report.log(
        f"batch {batch}, {threads} thread(s): p50 {row['p50_ms']} ms, {row['throughput_per_s']} items/s"
    )
    return row


def _input(manifest: Manifest, batch: int) -> np.ndarray:
    spec = manifest.input
    shape = (
        (batch, spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (batch, spec.height, spec.width, spec.channels)
    )
    values = np.random.default_rng(0).random(shape) * (255 if spec.dtype in ("uint8", "int8") else 1)
    return values.astype(spec.dtype)


def _stats(times: list[float], batch: int) -> dict[str, float]:
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {
        "runs": len(times),
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(np.mean(times)), 4),
        "throughput_per_s": round(batch * len(times) / (sum(times) / 1000), 2),
    }


class _PeakRss:
    """The worker's largest resident set while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.value = psutil.Process().memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.005):
            self.value = max(self.value, process.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.value = max(self.value, psutil.Process().memory_info().rss)
