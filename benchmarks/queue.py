"""Job queue cost as the queue grows: 10, 1,000 and 100,000 jobs waiting behind the one measured.

Goals (issue 19): the per-job cost (submit → pick → claim → ack, each a durable commit) at
100,000 queued within 1.5x of the cost at 10; the runner's admission pass likewise; a real
agent with 100,000 queued jobs idles under 0.3 % CPU; and its wake-up (submit → the job
running) does not grow with the queue. Issue 4's goal, < 1 ms per job, is printed too.
Anchors: persist-queue ~550 writes/s, litequeue 161 µs per put, and this machine's bare
durable commit (WAL, synchronous=FULL), the floor under each of a job's three commits.

Two parts, each at every backlog:
- bookkeeping, in this process on the agent's own queue code and database file;
- a real agent (command jobs allowed): one long job holds a slot, the backlog waits behind it
  for threads it holds (admission stops at the first, as it does on a busy kit), then
  short probe jobs are submitted over HTTP: submit → started, and the agent's CPU while idle.
Run: .venv/bin/python -m benchmarks.queue [--jobs 300] [--backlogs 10 1000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from agent.db import Database
from agent.jobs.admission import Capacity, Gatekeeper, admissible, total
from agent.jobs.leases import Leases
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.wire import JobRequest
from app.fleet.localagent import LocalAgent
from tests.integration.helpers import pair, raw_client

GOAL_MS, GOAL_RATIO, GOAL_IDLE_PERCENT = 1.0, 1.5, 0.3
ANCHORS_MS = {
    "persist-queue (~550 writes/s)": 1000 / 550,
    "litequeue put (161 µs)": 0.161,
}
ADMIN = Submitter("bench-admin", "admin")
PROBE = {"kind": "command", "params": {"argv": ["/bin/true"]}, "priority": 50, "resources": {"threads": 1}}
HOLDER = {"kind": "command", "params": {"argv": ["/bin/sleep", "3600"]}, "priority": 99}
# The backlog: each needs both of the kit's threads, so it waits while the holder runs.
BACKLOG = JobRequest.model_validate(
    {"kind": "command", "params": {"argv": ["/bin/true"]}, "priority": -5, "resources": {"threads": 2}}
)
KIT = Capacity(threads=2, memory_mb=1 << 20, gpu=0)


def fill(db: Database, queue: JobQueue, count: int) -> None:
    """`count` queued jobs, committed in chunks (the fill is not what is measured)."""
    for start in range(0, count, 5000):
        with db.transaction() as conn:
            for _ in range(min(5000, count - start)):
                queue.insert(conn, BACKLOG, submitter=ADMIN)


def bare_commit_ms(db: Database, count: int = 500) -> float:
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench (n INTEGER)")
    started = time.perf_counter()
    for n in range(count):
        with db.transaction() as conn:
            conn.execute("INSERT INTO bench VALUES (?)", (n,))
    return (time.perf_counter() - started) * 1000 / count


STEPS = ("submit", "pick+claim", "ack", "admit pass", "wall/job")


def bookkeeping(backlogs: list[int], jobs: int, rounds: int) -> dict[int, dict[str, float]]:
    """Mean CPU ms per step (this thread's CPU time: the fsync waits of a loaded disk would
    drown what the queue's size costs) for jobs taken through submit, pick + claim, and ack,
    with each backlog queued behind them; the runner's admission pass on that queue; and the
    wall-clock ms of a whole job. The backlogs take turns, `rounds` times, so drift in the
    machine's other work hits them alike; each figure is the median of its rounds."""
    request = JobRequest.model_validate({**PROBE, "params": {"argv": ["/bin/true"]}})
    per_round = max(jobs // rounds, 1)
    with tempfile.TemporaryDirectory() as tmp:
        queues: dict[int, tuple[JobQueue, Leases]] = {}
        for backlog in backlogs:
            (Path(tmp) / str(backlog)).mkdir()
            db = Database.open(Path(tmp) / str(backlog))
            queue = JobQueue(db, max_queued=backlog + jobs + 10)
            fill(db, queue, backlog)
            queues[backlog] = (queue, Leases(queue, "bench", 30.0))
        try:
            means: dict[int, dict[str, list[float]]] = {n: {s: [] for s in STEPS} for n in backlogs}
            for _ in range(rounds):
                for backlog, (queue, leases) in queues.items():
                    steps = _cycle(queue, leases, request, per_round)
                    for name, times in steps.items():
                        means[backlog][name].append(statistics.fmean(times))
        finally:
            for queue, _ in queues.values():
                queue.db.close()
    figures = {n: {name: statistics.median(values) for name, values in m.items()} for n, m in means.items()}
    for row in figures.values():
        row["per job"] = row["submit"] + row["pick+claim"] + row["ack"]
    return figures


def _cycle(queue: JobQueue, leases: Leases, request: JobRequest, jobs: int) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    for _ in range(jobs):
        wall, t0 = time.perf_counter(), time.thread_time()
        job, _ = queue.submit(request, ADMIN)
        t1 = time.thread_time()
        first = next(queue.in_pick_order(queue.clock()))
        assert first["id"] == job.job_id
        assert leases.claim(job.job_id)
        t2 = time.thread_time()
        leases.finish(job.job_id, {"exit_code": 0})
        t3, wall = time.thread_time(), time.perf_counter() - wall
        held = total([BACKLOG.resources.model_copy(update={"threads": 1})])
        admissible(queue.in_pick_order(queue.clock()), KIT, held, 3, queue.clock(), Gatekeeper())
        t4 = time.thread_time()
        for name, value in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, wall), strict=True):
            steps[name].append(value * 1000)
    return steps


def agent_figures(backlog: int, probes: int, idle_s: float) -> dict[str, float]:
    """A real agent with `backlog` jobs queued: median submit → started (ms), and CPU % idle."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "agent"
        data.mkdir()
        config = {
            "jobs_allowed_commands": ["/bin/true", "/bin/sleep"],
            "jobs_threads": 2,
            "jobs_max_queued": backlog + 1000,
        }
        (data / "agent.json").write_text(json.dumps(config))
        db = Database.open(data)
        fill(db, JobQueue(db, max_queued=backlog + 100), backlog)
        db.close()
        agent = LocalAgent(data, "bench-queue", mdns=False).start()
        try:
            with raw_client(agent, pair(agent)) as client:
                client.timeout = 60
                holder = client.post("/v1/jobs", json=HOLDER).json()["job_id"]
                _wait(client, holder, ("running",))
                waits = []
                for _ in range(probes):
                    job_id = client.post("/v1/jobs", json=PROBE).json()["job_id"]
                    info = _wait(client, job_id, ("done", "failed"))
                    waits.append((info["started_at"] - info["created_at"]) * 1000)
                time.sleep(2)  # the last probe's ending settles
                process = psutil.Process(agent.process.pid if agent.process else 0)
                before, started = process.cpu_times(), time.monotonic()
                time.sleep(idle_s)
                after = process.cpu_times()
                cpu = (after.user + after.system - before.user - before.system) / (time.monotonic() - started)
                client.post(f"/v1/jobs/{holder}/cancel")
        finally:
            agent.stop()
    return {"wake ms": statistics.median(waits), "idle cpu %": cpu * 100}


def _wait(client: httpx.Client, job_id: str, states: tuple[str, ...]) -> dict[str, Any]:
    while (info := client.get(f"/v1/jobs/{job_id}").json())["state"] not in states:
        time.sleep(0.02)
    return dict(info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs measured per backlog")
    parser.add_argument("--backlogs", type=int, nargs="+", default=[10, 1000, 100_000])
    parser.add_argument("--probes", type=int, default=15, help="jobs submitted to the real agent")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the idle agent is watched")
    parser.add_argument("--rounds", type=int, default=5, help="turns the backlogs take")
    parser.add_argument("--no-agent", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp))
        commit_ms = bare_commit_ms(db)
        db.close()
    bookkeeping([10], 30, 1)  # warm-up
    rows = bookkeeping(args.backlogs, args.jobs, args.rounds)
    agents = {} if args.no_agent else {n: agent_figures(n, args.probes, args.idle) for n in args.backlogs}
    load = os.getloadavg()
    print(
        f"job queue by backlog, {args.jobs} jobs measured each in {args.rounds} alternating rounds; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
        f"bare durable commit {commit_ms:.3f} ms"
    )
    names = list(next(iter(rows.values())))
    print(f"{'queued':>8}" + "".join(f"{n:>12}" for n in names) + "   (mean CPU ms; wall/job: wall ms)")
    for backlog, means in rows.items():
        print(f"{backlog:>8}" + "".join(f"{means[n]:>12.3f}" for n in names))
    base, top = rows[min(rows)], rows[max(rows)]
    ratios = {name: top[name] / base[name] for name in ("per job", "admit pass")}
    for name, ratio in ratios.items():
        met = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"  {name} at {max(rows)} vs {min(rows)}: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {met})")
    per_job = top["per job"]
    wall = top["wall/job"]
    print(f"  CPU per job at {max(rows)}: {per_job / GOAL_MS:.2f}x of issue 4's {GOAL_MS} ms budget")
    print(f"  wall per job at {max(rows)}: {wall / GOAL_MS:.2f}x of it, {wall / commit_ms:.2f}x a commit")
    for name, anchor in ANCHORS_MS.items():
        print(f"  vs {name}: {per_job / anchor:.2f}x")
    if agents:
        print("\nreal agent, one long job running, the backlog waiting behind it")
        for backlog, figures in agents.items():
            print(
                f"{backlog:>8}   submit → started {figures['wake ms']:7.1f} ms (median)"
                f"   idle CPU {figures['idle cpu %']:.3f} %"
            )
        low, high = agents[min(agents)], agents[max(agents)]
        idle = high["idle cpu %"]
        print(
            f"  wake-up at {max(agents)} vs {min(agents)}: {high['wake ms'] / low['wake ms']:.2f}x; "
            f"idle CPU {idle:.3f} % = {idle / GOAL_IDLE_PERCENT:.2f}x of the {GOAL_IDLE_PERCENT} % "
            f"ceiling ({'met' if idle < GOAL_IDLE_PERCENT else 'NOT met'})"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
