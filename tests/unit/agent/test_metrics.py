"""The on-disk metrics ring and its Prometheus rendering."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agent.db import Database
from agent.metrics import prometheus
from agent.metrics.ring import MetricRing, take_sample
from agent.wire import INFER_STAGES, InferTimings, MetricSample

DEVICE_ID = "ab" * 32
_SAMPLE_LINE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"')


def sample(n: int, temperature_c: float | None = 40.0) -> MetricSample:
    return MetricSample(
        ts=1000.0 + n,
        cpu_percent=float(n),
        memory_percent=50.0,
        disk_percent=10.0,
        temperature_c=temperature_c,
    )


def filled(db: Database, capacity: int, n: int) -> MetricRing:
    ring = MetricRing(db, capacity)
    for i in range(n):
        ring.append(sample(i))
    return ring


def stamps(ring: MetricRing) -> list[float]:
    return [s.ts for s in ring.since(0.0, limit=1000)]


def rows(db: Database) -> int:
    return int(db.query("SELECT COUNT(*) FROM metrics")[0][0])


# --- ring ---------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_below_one_is_rejected(db: Database, capacity: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        MetricRing(db, capacity)


def test_empty_ring_has_no_samples(db: Database) -> None:
    ring = MetricRing(db, 3)
    assert ring.latest() is None
    assert ring.since(0.0, limit=10) == []


@pytest.mark.parametrize("appended", [1, 3, 4, 10])
def test_ring_keeps_the_newest_samples_up_to_capacity(db: Database, appended: int) -> None:
    ring = filled(db, 3, appended)
    assert rows(db) == min(appended, 3)
    assert ring.overwritten() == max(0, appended - 3), "what it dropped is counted"
    assert stamps(ring) == [1000.0 + i for i in range(max(0, appended - 3), appended)]


def test_samples_come_back_intact_and_oldest_first(db: Database) -> None:
    ring = MetricRing(db, 4)
    written = [
        sample(0),
        sample(1, temperature_c=None),
        sample(2).model_copy(update={"disk_free_bytes": 123456789, "battery_percent": 55.5}),
    ]
    for s in written:
        ring.append(s)
    numbered = [s.model_copy(update={"seq": i}) for i, s in enumerate(written)]
    assert ring.since(0.0, limit=10) == numbered
    assert ring.latest() == numbered[-1]


def test_since_seq_follows_the_ring_order_even_when_the_clock_jumps_back(db: Database) -> None:
    ring = MetricRing(db, 10)
    for ts in (2000.0, 2001.0, 1500.0, 1501.0):  # the kit's clock was set back between samples
        ring.append(sample(0).model_copy(update={"ts": ts}))
    assert [s.ts for s in ring.since(0.0, 10, since_seq=1)] == [1500.0, 1501.0]
    assert [s.seq for s in ring.since(0.0, 10, since_seq=-1)] == [0, 1, 2, 3]
    assert ring.since(2001.0, 10) == []  # by time, the samples after the jump are lost


def test_since_returns_only_later_samples(db: Database) -> None:
    ring = filled(db, 10, 5)
    assert [s.ts for s in ring.since(1002.0, limit=10)] == [1003.0, 1004.0]
    assert ring.since(1004.0, limit=10) == []


def test_since_limit_keeps_the_oldest(db: Database) -> None:
    ring = filled(db, 10, 5)
    assert [s.ts for s in ring.since(0.0, limit=2)] == [1000.0, 1001.0]


def test_ring_survives_reopening_and_keeps_overwriting_the_oldest(tmp_path: Path) -> None:
    first = Database.open(tmp_path)
    filled(first, 3, 5)
    first.close()
    second = Database.open(tmp_path)
    try:
        ring = MetricRing(second, 3)
        assert stamps(ring) == [1002.0, 1003.0, 1004.0]
        ring.append(sample(5))
        assert stamps(ring) == [1003.0, 1004.0, 1005.0]
        assert ring.latest() == sample(5).model_copy(update={"seq": 5})
        assert rows(second) == 3
    finally:
        second.close()


@pytest.mark.parametrize(("old_capacity", "new_capacity"), [(10, 3), (3, 5)])
def test_reopening_with_another_capacity_keeps_the_newest_samples(
    tmp_path: Path, old_capacity: int, new_capacity: int
) -> None:
    first = Database.open(tmp_path)
    filled(first, old_capacity, 10)
    first.close()
    second = Database.open(tmp_path)
    try:
        ring = MetricRing(second, new_capacity)
        ring.append(sample(10))
        kept = min(new_capacity, old_capacity + 1)
        assert stamps(ring) == [1000.0 + i for i in range(11 - kept, 11)]
        assert rows(second) <= new_capacity
    finally:
        second.close()


def test_take_sample_reads_plausible_figures(tmp_path: Path) -> None:
    before = time.time()
    take_sample(str(tmp_path))  # cpu_percent is relative to the previous call
    reading = take_sample(str(tmp_path))
    assert before <= reading.ts <= time.time()
    for percent in (reading.cpu_percent, reading.memory_percent, reading.disk_percent):
        assert 0.0 <= percent <= 100.0
    assert reading.memory_percent > 0.0
    assert reading.temperature_c is None or -60.0 < reading.temperature_c < 150.0


# --- prometheus ---------------------------------------------------------------


def parse(text: str) -> dict[str, tuple[dict[str, str], float]]:
    """Check the text exposition format line by line; returns {name: (labels, value)}."""
    assert text.endswith("\n")
    declared: dict[str, set[str]] = {}
    found: dict[str, tuple[dict[str, str], float]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            comment = re.fullmatch(r"# (HELP|TYPE) (\S+) (.+)", line)
            assert comment, f"not a HELP or TYPE line: {line!r}"
            kind, name, rest = comment.groups()
            declared.setdefault(name, set()).add(kind)
            if kind == "TYPE":
                assert rest == ("counter" if name.endswith("_total") else "gauge")
            continue
        match = _SAMPLE_LINE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        labels = match["labels"] or ""
        pairs = [p for p in labels.split(",") if p]
        assert all(_LABEL.fullmatch(p) for p in pairs), line
        assert declared.get(match["name"]) == {"HELP", "TYPE"}, f"{match['name']} undeclared"
        assert match["name"] not in found
        found[match["name"]] = (dict(p.split("=", 1) for p in pairs), float(match["value"]))
    return found


def test_render_without_a_sample_gives_only_the_agent_info() -> None:
    found = parse(prometheus.render(None, DEVICE_ID, "1.2.3"))
    assert found == {"kitfleet_agent_info": ({"device_id": f'"{DEVICE_ID}"', "version": '"1.2.3"'}, 1.0)}


def test_render_with_a_sample_gives_every_gauge() -> None:
    reading = MetricSample(
        ts=1.0, cpu_percent=12.5, memory_percent=40.0, disk_percent=3.25, temperature_c=51.0
    )
    found = parse(prometheus.render(reading, DEVICE_ID, "1.2.3"))
    assert {name: value for name, (_, value) in found.items()} == {
        "kitfleet_agent_info": 1.0,
        "kitfleet_cpu_percent": 12.5,
        "kitfleet_memory_percent": 40.0,
        "kitfleet_disk_percent": 3.25,
        "kitfleet_temperature_celsius": 51.0,
    }
    assert all(labels["device_id"] == f'"{DEVICE_ID}"' for labels, _ in found.values())


def test_render_counts_the_batchers_work_when_batching_is_on() -> None:
    found = parse(prometheus.render(None, DEVICE_ID, "1.2.3", (4, 30)))
    assert found["kitfleet_infer_batches_total"][1] == 4
    assert found["kitfleet_infer_batched_requests_total"][1] == 30


def test_render_leaves_out_a_missing_temperature() -> None:
    found = parse(prometheus.render(sample(1, temperature_c=None), DEVICE_ID, "1.2.3"))
    assert "kitfleet_temperature_celsius" not in found
    assert "kitfleet_cpu_percent" in found


def test_render_of_a_real_reading_parses(tmp_path: Path) -> None:
    found = parse(prometheus.render(take_sample(str(tmp_path)), DEVICE_ID, "0.1.0"))
    assert "kitfleet_disk_percent" in found


def test_render_gives_each_models_infer_stages_as_labelled_counters() -> None:
    timings = [
        InferTimings(model="digits", requests=3, total_s=0.009, read_s=0.001, infer_s=0.006, write_s=0.002),
        InferTimings(model="yolo", requests=1, total_s=0.05, infer_s=0.05),
    ]
    text = prometheus.render(None, DEVICE_ID, "1.2.3", None, timings)
    series: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE_LINE.fullmatch(line)
        if line.startswith("#") or match is None or not match["name"].startswith("kitfleet_infer"):
            continue
        labels = dict(p.split("=", 1) for p in (match["labels"] or "").split(","))
        assert labels["device_id"] == f'"{DEVICE_ID}"'
        key = (match["name"], labels["model"], labels.get("stage", ""))
        assert key not in series
        series[key] = float(match["value"])
    assert text.count("# TYPE kitfleet_infer_seconds_total counter") == 1
    assert series[("kitfleet_infer_requests_total", '"digits"', "")] == 3
    assert series[("kitfleet_infer_seconds_total", '"digits"', '"write"')] == 0.002
    assert series[("kitfleet_infer_seconds_total", '"yolo"', '"total"')] == 0.05
    stages = [s for (name, model, s) in series if name.endswith("seconds_total") and model == '"yolo"']
    assert stages == ['"total"'] + [f'"{stage}"' for stage in INFER_STAGES]
