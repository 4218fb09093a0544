"""Metrics history in the inventory: idempotent merges, time order, bounded retention."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from agent.wire import MetricSample
from app.fleet.history import MetricsHistory
from app.fleet.inventory import Inventory

KIT, OTHER = "a" * 64, "b" * 64


def sample(
    seq: int | None,
    ts: float,
    cpu: float = 10.0,
    free: int | None = 5 << 30,
    temperature: float | None = 50.0,
) -> MetricSample:
    return MetricSample(
        seq=seq,
        ts=ts,
        cpu_percent=cpu,
        memory_percent=40.0,
        disk_percent=30.0,
        temperature_c=temperature,
        disk_free_bytes=free,
        battery_percent=None,
    )


def test_merging_the_same_samples_twice_changes_nothing(inventory: Inventory) -> None:
    history = MetricsHistory(inventory)
    batch = [sample(i, 1000.0 + 10 * i) for i in range(5)]
    assert history.merge(KIT, batch) == 5
    assert history.merge(KIT, batch) == 0
    assert history.merge(KIT, [*batch[2:], sample(5, 1050.0)]) == 1
    assert history.count(KIT) == 6
    assert history.cursor(KIT) == 5
    assert history.series(KIT) == [*batch, sample(5, 1050.0)]


def test_series_is_in_time_order_even_when_the_kit_clock_went_back(inventory: Inventory) -> None:
    history = MetricsHistory(inventory)
    history.merge(KIT, [sample(0, 2000.0), sample(1, 2010.0), sample(2, 1500.0)])
    assert [s.ts for s in history.series(KIT)] == [1500.0, 2000.0, 2010.0]
    assert history.cursor(KIT) == 2  # the next pull still continues after seq 2
    assert history.latest(KIT) == sample(1, 2010.0)


def test_kits_are_kept_apart_and_merged_in_one_go(inventory: Inventory) -> None:
    history = MetricsHistory(inventory)
    assert history.merge_many({KIT: [sample(0, 1.0)], OTHER: [sample(0, 1.0), sample(1, 2.0)]}) == 3
    assert (history.count(KIT), history.count(OTHER)) == (1, 2)
    assert history.cursor("c" * 64) is None


def test_retention_drops_samples_older_than_the_window_on_the_kits_clock(inventory: Inventory) -> None:
    history = MetricsHistory(inventory, retention_s=100.0)
    history.merge(KIT, [sample(i, 1000.0 + 10 * i) for i in range(20)])  # 1000 … 1190
    kept = [s.ts for s in history.series(KIT)]
    assert kept[0] >= 1090.0
    assert kept[-1] == 1190.0


def test_retention_keeps_at_most_max_samples_the_newest(inventory: Inventory) -> None:
    history = MetricsHistory(inventory, max_samples=7)
    for start in range(0, 30, 5):  # several polls
        history.merge(KIT, [sample(i, 1000.0 + i) for i in range(start, start + 5)])
    assert [s.seq for s in history.series(KIT)] == list(range(23, 30))


def test_samples_from_an_agent_without_seq_still_merge_once(inventory: Inventory) -> None:
    history = MetricsHistory(inventory)
    old = [sample(None, 1000.5), sample(None, 1010.25)]
    assert history.merge(KIT, old) == 2
    assert history.merge(KIT, old) == 0
    assert history.cursor(KIT) is None  # so the next pull asks for everything, by time


def test_window_gives_the_coolest_recent_reading_and_the_free_space_an_hour_ago(inventory: Inventory) -> None:
    history = MetricsHistory(inventory)
    history.merge(
        KIT,
        [
            sample(0, 0.0, free=9 << 30, temperature=20.0),
            sample(1, 4000.0, free=8 << 30, temperature=85.0),
            sample(2, 4200.0, free=7 << 30, temperature=95.0),
        ],
    )
    coolest, earlier = history.window(KIT, 4200.0, 300.0)
    assert coolest == 85.0
    assert earlier == (4000.0, 8 << 30)


def test_history_survives_reopening_the_inventory(tmp_path: Path) -> None:
    first = Inventory(tmp_path)
    MetricsHistory(first).merge(KIT, [sample(0, 1.0), sample(1, 2.0)])
    first.close()
    second = Inventory(tmp_path)
    try:
        assert MetricsHistory(second).count(KIT) == 2
    finally:
        second.close()


def test_an_inventory_from_before_fleet_operations_upgrades_in_place(tmp_path: Path) -> None:
    first = Inventory(tmp_path)
    first.db.execute("DROP TABLE metrics")
    first.close()
    with closing(sqlite3.connect(tmp_path / "inventory.db")) as conn, conn:
        later = ("rollout_kits", "rollouts", "precision_choices")  # steps 4 and 5
        for table in ("snapshots", "tags", "app_audit", "kit_audit", "kit_audit_state", *later):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 1")
    again = Inventory(tmp_path)
    try:
        assert MetricsHistory(again).merge(KIT, [sample(0, 1.0)]) == 1
    finally:
        again.close()
