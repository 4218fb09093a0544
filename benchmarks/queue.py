"""Job queue overhead per job: submit → claim → ack, every step a durable commit.

Goal (issue 4): < 1 ms per job. Anchors: persist-queue ~550 writes/s, litequeue
161 µs per put, SQLite WAL with synchronous=FULL ~4.9k commits/s on this kind of
machine (measured here too, as the floor: a job costs three commits).
The queue is the agent's own (agent/jobs), on its own database file with the
agent's pragmas; no worker processes are started, so this is the bookkeeping alone.
Run: .venv/bin/python -m benchmarks.queue [--jobs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from agent.db import Database
from agent.jobs.leases import Leases
from agent.jobs.queue import JobQueue
from agent.wire import JobRequest

GOAL_MS = 1.0
ANCHORS_MS = {
    "persist-queue (~550 writes/s)": 1000 / 550,
    "litequeue put (161 µs)": 0.161,
    "SQLite WAL full sync (~4.9k commits/s)": 1000 / 4900,
}
REQUEST = JobRequest.model_validate(
    {"kind": "command", "params": {"argv": ["/bin/true"]}, "resources": {"threads": 1}}
)


def bare_commits(db: Database, count: int) -> float:
    """ms per BEGIN IMMEDIATE … COMMIT of one small insert: the floor under any durable step."""
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench (n INTEGER)")
    started = time.perf_counter()
    for n in range(count):
        with db.transaction() as conn:
            conn.execute("INSERT INTO bench VALUES (?)", (n,))
    return (time.perf_counter() - started) * 1000 / count


def job_cycle(queue: JobQueue, leases: Leases, count: int) -> dict[str, list[float]]:
    """Per-step times (ms) for `count` jobs taken through submit, claim (with admission's
    candidate query), and ack."""
    steps: dict[str, list[float]] = {"submit": [], "claim": [], "ack": [], "total": []}
    for _ in range(count):
        t0 = time.perf_counter()
        job, _ = queue.submit(REQUEST)
        t1 = time.perf_counter()
        [row] = queue.candidates(queue.clock(), 600.0, limit=1)
        assert leases.claim(str(row["id"]))
        t2 = time.perf_counter()
        leases.finish(job.job_id, {"exit_code": 0})
        t3 = time.perf_counter()
        for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            value_ms = value * 1000
            steps[name].append(value_ms)
    return steps


def report(steps: dict[str, list[float]], commit_ms: float) -> None:
    for name, times in steps.items():
        ordered = sorted(times)
        print(
            f"  {name:<6} mean {statistics.fmean(times):7.3f} ms   p50 {ordered[len(ordered) // 2]:7.3f} ms"
            f"   p95 {ordered[int(len(ordered) * 0.95) - 1]:7.3f} ms"
        )
    per_job = statistics.fmean(steps["total"])
    print(f"\nper job: {per_job:.3f} ms  ({1000 / per_job:.0f} jobs/s through all three steps)")
    print(
        f"  vs goal {GOAL_MS} ms: {per_job / GOAL_MS:.2f}x of the budget "
        f"({'met' if per_job < GOAL_MS else 'NOT met'})"
    )
    print(
        f"  vs this machine's bare durable commit ({commit_ms:.3f} ms): {per_job / commit_ms:.2f}x "
        "(three commits per job)"
    )
    for name, anchor in ANCHORS_MS.items():
        print(f"  vs {name}: {per_job / anchor:.2f}x ({anchor:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp))
        try:
            commit_ms = bare_commits(db, args.jobs)
            queue = JobQueue(db, max_queued=args.jobs + 1)
            job_cycle(queue, Leases(queue, "warm-up", 30.0), 50)
            steps = job_cycle(queue, Leases(queue, "bench", 30.0), args.jobs)
        finally:
            db.close()
    print(f"queue overhead, {args.jobs} jobs, WAL + synchronous=FULL, one commit per step")
    print(f"bare durable commit: {commit_ms:.3f} ms ({1000 / commit_ms:.0f} commits/s)\n")
    report(steps, commit_ms)


if __name__ == "__main__":
    main()
