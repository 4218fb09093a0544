"""Render the latest sample in the Prometheus text exposition format."""

from __future__ import annotations

from agent.wire import MetricSample

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
    sample: MetricSample | None, device_id: str, version: str, batching: tuple[int, int] | None = None
) -> str:
    """`batching` is (batches, requests in them) while batching is on: their ratio is the mean
    batch size, which tells whether `infer_batch_window_ms` pays on this kit."""
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
    return "\n".join(lines) + "\n"
