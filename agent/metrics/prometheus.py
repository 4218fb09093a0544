"""Render the latest sample in the Prometheus text exposition format."""

from __future__ import annotations

from collections.abc import Sequence

from agent.wire import INFER_STAGES, InferCounts, InferTimings, MetricSample

_GAUGES = (
    ("kitfleet_cpu_percent", "cpu_percent", "CPU use of the kit, percent"),
    ("kitfleet_memory_percent", "memory_percent", "Memory in use, percent"),
    ("kitfleet_disk_percent", "disk_percent", "Disk in use under the data dir, percent"),
    ("kitfleet_temperature_celsius", "temperature_c", "Hottest sensor, degrees Celsius"),
)


_BATCHING = (
    ("kitfleet_infer_batches_total", "Batches the infer batcher ran"),
    ("kitfleet_infer_batched_requests_total", "Infer requests answered in those batches"),
)


def render(
    sample: MetricSample | None,
    device_id: str,
    version: str,
    batching: tuple[int, int] | None = None,
    timings: Sequence[InferTimings] = (),
    counts: Sequence[InferCounts] = (),
) -> str:
    """`batching` is (batches, requests in them) while batching is on: their ratio is the mean
    batch size, which tells whether `infer_batch_window_ms` pays on this kit. `timings`: where
    each model's infer requests spent their time (as Triton's per-stage counters). `counts`: each
    model version's infer requests by outcome (answered, refused: the request's fault, failed:
    the kit's)."""
    labels = f'device_id="{device_id}"'
    lines = [
        "# HELP kitfleet_agent_info Agent build and identity.",
        "# TYPE kitfleet_agent_info gauge",
        f'kitfleet_agent_info{{{labels},version="{version}"}} 1',
    ]
    for metric, attr, help_text in _GAUGES:
        value = getattr(sample, attr) if sample is not None else None
        if value is None:
            continue
        lines += [f"# HELP {metric} {help_text}.", f"# TYPE {metric} gauge", f"{metric}{{{labels}}} {value}"]
    for (metric, help_text), count in zip(_BATCHING, batching or (), strict=False):
        lines += [
            f"# HELP {metric} {help_text}.",
            f"# TYPE {metric} counter",
            f"{metric}{{{labels}}} {count}",
        ]
    return "\n".join(lines + _timing_lines(labels, timings) + _count_lines(labels, counts)) + "\n"


def _count_lines(labels: str, counts: Sequence[InferCounts]) -> list[str]:
    if not counts:
        return []
    lines = [
        "# HELP kitfleet_infer_outcomes_total Infer requests by model version and outcome "
        "(refused: the request's fault; failed: the kit's).",
        "# TYPE kitfleet_infer_outcomes_total counter",
    ]
    for c in counts:
        for outcome in ("answered", "refused", "failed"):
            lines.append(
                f'kitfleet_infer_outcomes_total{{{labels},model="{c.model}",version="{c.version}",'
                f'outcome="{outcome}"}} {getattr(c, outcome)}'
            )
    return lines


def _timing_lines(labels: str, timings: Sequence[InferTimings]) -> list[str]:
    if not timings:
        return []
    lines = [
        "# HELP kitfleet_infer_requests_total Infer requests answered, by model.",
        "# TYPE kitfleet_infer_requests_total counter",
    ]
    lines += [f'kitfleet_infer_requests_total{{{labels},model="{t.model}"}} {t.requests}' for t in timings]
    lines += [
        "# HELP kitfleet_infer_seconds_total Time answered infer requests spent, by model and stage "
        "(total: from headers read to answer written).",
        "# TYPE kitfleet_infer_seconds_total counter",
    ]
    for t in timings:
        for stage in ("total", *INFER_STAGES):
            seconds = getattr(t, f"{stage}_s")
            lines.append(
                f'kitfleet_infer_seconds_total{{{labels},model="{t.model}",stage="{stage}"}} {seconds}'
            )
    return lines
