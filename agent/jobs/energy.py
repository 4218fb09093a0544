"""A job's energy: metered in the worker around the kind's run, divided by what it inferred.

The meter never fails a job: a kit that cannot measure estimates, and a meter that breaks
leaves the result without `energy` rather than without a result.
"""

from __future__ import annotations

import threading
from typing import Any

from agent.energy import DEFAULT_TDP_W, EnergyReading, FallbackMeter
from agent.wire import JobEnergy, PowerSample

SAMPLE_EVERY_S = 5.0  # often enough that RAPL cannot wrap twice unseen (it takes minutes)
MAX_SAMPLES = 24  # a stream's watts over time: neighbours are merged beyond this
IMAGE_KINDS = ("batch-infer", "evaluate", "stream")


class JobMeter:
    """`with JobMeter(spec) as energy: summary = run(...)`, then `energy.added_to(summary)`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._meter = FallbackMeter(tdp_w=float(spec.get("tdp_w", DEFAULT_TDP_W)))
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._samples: list[tuple[float, float]] = []  # (seconds since start, joules so far)

    def __enter__(self) -> JobMeter:
        self._token = self._meter.start()
        threading.Thread(target=self._sample, name="energy", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self.reading = self._read()

    def _read(self) -> EnergyReading:
        with self._lock:
            return self._meter.stop(self._token)  # reads without ending: it can be asked again

    def _sample(self) -> None:
        while not self._stopped.wait(SAMPLE_EVERY_S):
            reading = self._read()
            self._samples.append((reading.seconds, reading.joules))

    def added_to(self, summary: dict[str, Any]) -> dict[str, Any]:
        energy = job_energy(self.reading, self.spec, summary, self._samples)
        return {**summary, "energy": energy.model_dump(mode="json", exclude_none=True)}


def job_energy(
    reading: EnergyReading,
    spec: dict[str, Any],
    summary: dict[str, Any],
    samples: list[tuple[float, float]] | None = None,
) -> JobEnergy:
    energy = JobEnergy(
        joules=round(reading.joules, 4),
        avg_watts=round(reading.avg_watts, 3),
        seconds=round(reading.seconds, 3),
        source=reading.source,
        note=reading.note,
    )
    count = inferences(spec, summary)
    if count and spec["kind"] == "benchmark":
        energy.note = (
            f"{reading.note}; per 1,000 inferences over the whole job, model load and "
            "warm-up included (each row gives its timed runs' own)"
        )
    if count:
        energy.inferences = count
        energy.joules_per_1000_inferences = round(reading.joules * 1000 / count, 4)
        if spec["kind"] in IMAGE_KINDS:
            energy.joules_per_image = round(reading.joules / count, 6)
    if spec["kind"] == "stream":
        energy.watts_over_time = watts_over_time([*(samples or []), (reading.seconds, reading.joules)])
    return energy


def inferences(spec: dict[str, Any], summary: dict[str, Any]) -> int | None:
    """Model runs × batch the job made: a benchmark's timed and warm-up runs, or images."""
    kind = spec["kind"]
    if kind == "benchmark":
        warmup = int(spec["params"].get("warmup", 0))
        rows = [r for r in summary.get("rows", []) if "runs" in r]
        return sum((int(r["runs"]) + warmup) * int(r["batch"]) for r in rows) or None
    key = "processed" if kind == "stream" else "images"
    value = summary.get(key)
    return int(value) if isinstance(value, int) and value > 0 else None


def watts_over_time(points: list[tuple[float, float]]) -> list[PowerSample]:
    """Average watts per interval between cumulative (seconds, joules) points, merged in
    pairs until at most MAX_SAMPLES remain."""
    while len(points) > MAX_SAMPLES:
        points = points[1::2] + ([points[-1]] if len(points) % 2 else [])
    samples, before = [], (0.0, 0.0)
    for at, joules in points:
        if at > before[0]:
            samples.append(
                PowerSample(at_s=round(at, 1), watts=round((joules - before[1]) / (at - before[0]), 3))
            )
        before = (at, joules)
    return samples
