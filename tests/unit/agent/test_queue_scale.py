"""A queue that stays quick as it grows: the kept unfinished count, the stored pick order and
the indexes that serve it, checked on a real database (upgraded in place, killed mid-write)."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import db_schema as agent_db_schema
from agent.api.errors import status_of
from agent.db import DB_FILE, Database
from agent.errors import Refusal
from agent.jobs.leases import Leases
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.wire import JobRequest

ADMIN = Submitter("admin-token", "admin")
NOW = 2_000_000.0


def job(priority: int = 0, **extra: object) -> JobRequest:
    return JobRequest.model_validate(
        {"kind": "command", "params": {"argv": ["/bin/true"]}, "priority": priority, **extra}
    )


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def kept(db: Database) -> int:
    return int(db.query("SELECT unfinished FROM job_counts")[0][0])


def counted(db: Database) -> int:
    return int(db.query("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")[0][0])


def test_the_kept_count_follows_every_change_of_state(db: Database) -> None:
    queue = JobQueue(db, max_queued=4)
    leases = Leases(queue, "me", 30.0)
    ids = [queue.submit(job(max_retries=2), ADMIN)[0].job_id for _ in range(4)]
    assert kept(db) == counted(db) == 4
    with pytest.raises(Refusal) as full:
        queue.submit(job(), ADMIN)
    assert (status_of(full.value), full.value.error) == (429, "queue_full")
    assert leases.claim(ids[0])
    assert kept(db) == 4, "running is still unfinished"
    leases.finish(ids[0], {"ok": True})
    queue.cancel_queued(ids[1])
    assert leases.claim(ids[2])
    leases.fail(ids[2], "broke", permanent=False)  # back to the queue: still unfinished
    assert kept(db) == counted(db) == 2
    queue.delete(ids[0])
    assert kept(db) == counted(db) == 2
    queue.submit(job(), ADMIN)
    assert queue.unfinished() == counted(db) == 3


def test_the_pick_order_is_effective_priority_read_from_the_index(db: Database) -> None:
    clock = Clock()
    queue = JobQueue(db, clock=clock, aging_s=600.0)
    rng = random.Random(7)
    for _ in range(200):
        clock.now = NOW + rng.uniform(0, 20_000)
        queue.submit(job(priority=rng.randint(-5, 5)), ADMIN)
    now = NOW + 30_000
    sorted_by_sql = [r["id"] for r in queue.candidates(now, aging_s=600.0000001)]  # the computed sort
    assert [r["id"] for r in queue.candidates(now)] == sorted_by_sql
    assert [r["id"] for r in queue.in_pick_order(now, page=7)] == sorted_by_sql


def test_a_new_aging_setting_makes_the_keys_again(db: Database) -> None:
    clock = Clock()
    queue = JobQueue(db, clock=clock, aging_s=600.0)
    old = queue.submit(job(priority=0), ADMIN)[0].job_id
    clock.now += 3600
    urgent = queue.submit(job(priority=3), ADMIN)[0].job_id
    assert [r["id"] for r in queue.in_pick_order(clock.now)] == [old, urgent], "an hour is 6 levels"
    patient = JobQueue(db, clock=clock, aging_s=1e9)  # the setting changed between two starts
    assert [r["id"] for r in patient.in_pick_order(clock.now)] == [urgent, old]


def test_the_queries_of_a_pass_use_indexes_not_a_sort_of_the_queue(db: Database) -> None:
    queue = JobQueue(db)
    for _ in range(50):
        queue.submit(job(), ADMIN)
    plans = {
        "pick": "SELECT * FROM jobs INDEXED BY jobs_pick WHERE state = 'queued' AND not_before <= 1"
        " ORDER BY pick_key, queued_at, rowid LIMIT 16",
        "next due": "SELECT min(not_before) FROM jobs INDEXED BY jobs_not_before"
        " WHERE state = 'queued' AND not_before > 1",
        "running": "SELECT id FROM jobs WHERE state = 'running'",
    }
    for name, sql in plans.items():
        plan = " | ".join(str(r[3]) for r in db.query("EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan, (name, plan)
        assert "TEMP B-TREE" not in plan, (name, plan)


def _step() -> int:
    """This change's place in the migrations (others may be appended after it)."""
    return next(n for n, sql in enumerate(agent_db_schema.MIGRATIONS) if "CREATE TABLE job_counts" in sql)


def test_an_old_queue_upgrades_in_place_with_its_count_and_order(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with sqlite3.connect(path) as conn:
        for n, sql in enumerate(agent_db_schema.MIGRATIONS[: _step()]):
            conn.executescript(sql)
            conn.execute(f"PRAGMA user_version = {n + 1}")
        rows = [
            ("late-urgent", 5, NOW + 600, "queued"),
            ("early", 0, NOW, "queued"),
            ("low", -3, NOW, "queued"),
            ("busy", 0, NOW, "running"),
            ("over", 0, NOW, "done"),
        ]
        for job_id, priority, queued_at, state in rows:
            conn.execute(
                "INSERT INTO jobs (id, kind, request, priority, threads, memory_mb, gpu, state,"
                " max_retries, queued_at, created_at, updated_at)"
                " VALUES (?, 'command', ?, ?, 1, 0, 0, ?, 0, ?, ?, ?)",
                (job_id, job(priority).model_dump_json(), priority, state, queued_at, queued_at, queued_at),
            )
    db = Database(path)
    try:
        queue = JobQueue(db)
        assert kept(db) == 4
        order = [r["id"] for r in queue.in_pick_order(NOW + 700)]
        assert order == ["late-urgent", "early", "low"]
        assert order == [r["id"] for r in queue.candidates(NOW + 700, aging_s=600.0000001)]
    finally:
        db.close()


def test_the_count_is_right_after_a_kill_in_the_middle_of_a_write(tmp_path: Path) -> None:
    """A process that commits some jobs and dies (SIGKILL) inside the next transaction: the
    count read afterwards is that of the committed jobs."""
    Database.open(tmp_path).close()
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from agent.db import Database
        from agent.jobs.queue import JobQueue
        from agent.jobs.submitter import Submitter
        from agent.wire import JobRequest
        request = JobRequest.model_validate({{"kind": "command", "params": {{"argv": ["/bin/true"]}}}})
        queue = JobQueue(Database.open(Path({str(tmp_path)!r})))
        admin = Submitter("t", "admin")
        for _ in range(30):
            queue.submit(request, admin)
        with queue.db.transaction() as conn:
            for _ in range(20):
                queue.insert(conn, request, submitter=admin)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    died = subprocess.run([sys.executable, "-c", child], check=False, timeout=120)
    assert died.returncode == -9
    db = Database.open(tmp_path)
    try:
        assert kept(db) == counted(db) == 30
    finally:
        db.close()
