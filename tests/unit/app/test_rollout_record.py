"""Rollout plans and records: wave shares, failure thresholds, the inventory's one-live-rollout
rule and the runner's lease (a real SQLite inventory in a temporary home)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.fleet.inventory import Inventory
from app.fleet.rollout.record import (
    KitState,
    Rollout,
    RolloutError,
    failures_allowed,
    parse_max_failures,
    parse_waves,
    wave_sizes,
)
from app.fleet.rollout.store import RolloutStore


def test_waves_are_cumulative_shares_and_always_reach_every_kit() -> None:
    assert parse_waves("25%,100%") == [0.25, 1.0]
    assert parse_waves("0.5") == [0.5, 1.0]  # a last wave takes the rest
    assert wave_sizes(8, [0.25, 1.0]) == [2, 6]
    assert wave_sizes(3, [0.1, 0.2, 1.0]) == [1, 1, 1]  # every wave at least one kit while any remain
    assert wave_sizes(1, [0.5, 1.0]) == [1, 0]
    assert sum(wave_sizes(19, [0.1, 0.5, 1.0])) == 19


@pytest.mark.parametrize("bad", ["", "50%,25%", "0%", "120%", "abc", "1,2,3,4,5,6,7,8,9,10,11"])
def test_bad_waves_are_refused_with_an_example(bad: str) -> None:
    with pytest.raises(RolloutError, match="--waves"):
        parse_waves(bad)


def test_failure_thresholds_by_count_or_share() -> None:
    assert failures_allowed(parse_max_failures("2"), 10) == 2
    assert failures_allowed(parse_max_failures("25%"), 10) == 2
    assert failures_allowed(parse_max_failures("0"), 10) == 0
    for bad in ("-1", "x", "150%"):
        with pytest.raises(RolloutError, match="--max-failures"):
            parse_max_failures(bad)


def _rollout(rollout_id: str, model: str = "digits") -> Rollout:
    kits = [KitState("a" * 64, "kit-a", 0, version="2"), KitState("b" * 64, "kit-b", 1, version="2")]
    return Rollout(rollout_id, model, "2", "0" * 64, "/m.onnx", kits, [1.0], created_at=1.0)


def test_one_live_rollout_per_model_and_the_record_reads_back(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path)
    store = RolloutStore(inventory)
    first = _rollout("ro-1")
    first.kits[0].checks = {"top1 2": 0.9}
    store.create(first)
    with pytest.raises(RolloutError, match=r"a rollout of digits is already under way \(ro-1, uploading\)"):
        store.create(_rollout("ro-2"))
    store.create(_rollout("ro-3", model="other"))  # another model is its own rollout
    assert store.get("ro-1") == first
    first.phase = "done"
    store.save(first)
    store.create(_rollout("ro-4"))  # the first one finished: a new one is accepted
    phases = {r.rollout_id: r.phase for r in store.all()}
    assert phases == {"ro-1": "done", "ro-3": "uploading", "ro-4": "uploading"}
    kits = inventory.db.execute("SELECT kit_name, state FROM rollout_kits WHERE rollout_id = 'ro-1'")
    assert sorted(kits.fetchall()) == [("kit-a", "pending"), ("kit-b", "pending")]
    inventory.close()


def test_a_live_runner_is_never_joined_and_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path)
    store = RolloutStore(inventory)
    store.create(_rollout("ro-9"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with inventory.db.conn:
            inventory.db.execute(
                "UPDATE rollouts SET runner_pid = ?, heartbeat_at = strftime('%s','now') "
                "WHERE rollout_id = 'ro-9'",
                (other.pid,),
            )
        with pytest.raises(RolloutError, match=f"being run by process {other.pid}"):
            store.claim("ro-9")
    finally:
        other.kill()
        other.wait()
    store.claim("ro-9")  # its process is gone: this one takes over
    row = inventory.db.execute("SELECT runner_pid FROM rollouts WHERE rollout_id = 'ro-9'").fetchone()
    assert row[0] == os.getpid()
    inventory.close()
