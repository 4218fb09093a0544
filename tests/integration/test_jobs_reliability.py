"""The queue under abuse, with real agent processes: kill -9 mid-job, hundreds of queued jobs,
and a cron schedule that must fire after a restart."""

from __future__ import annotations

import collections
import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from agent.jobs.spares import (
    NEW_GROUP_NICE,
    SPARE_NICE,
    autogroup_nice,
    may_restore_priority,
    set_autogroup_nice,
)
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import FINISHED, configure, deploy, submit, wait
from tests.integration.test_stream import deploy_detector
from tests.videos import write_video

# A job that notices if another copy of itself runs at the same time (flock is released
# by the kernel when a killed process dies, so only a live overlap is seen).
JOB_SCRIPT = """
import fcntl, os, sys, time
markers, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
lock = open(os.path.join(markers, tag + ".lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    open(os.path.join(markers, tag + ".overlap"), "a").write("overlap\\n")
time.sleep(seconds)
with open(os.path.join(markers, tag + ".runs"), "a") as runs:
    runs.write(f"{os.getpid()}\\n")
"""


def _all_finished(client: httpx.Client, ids: set[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j["job_id"]: j for j in client.get("/v1/jobs", params={"limit": 1000}).json()}
        if all(jobs.get(i, {}).get("state") in FINISHED for i in ids) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.1)


def _wait_for_no_workers(data_dir: Path) -> None:
    """Orphaned workers die at once with their agent: the end of their life line makes the
    kernel kill each worker's group, even one holding the GIL in C code (a spare importing ONNX
    Runtime); SIGTERM from the kernel and the watching thread back that up. The wait is only
    for a busy machine; a worker left after it is shown as the kernel sees it."""
    deadline = time.monotonic() + 15
    while _workers_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _workers_of(data_dir)
    assert left == [], "workers die with their agent:\n" + "\n".join(map(_why_alive, left))


def _why_alive(pid: int) -> str:
    """What the kernel says of a worker that outlived its agent: its state and signals (a
    SIGTERM pending but not acted on, SIGKILL pending in an uninterruptible wait) and where
    each of its threads waits."""
    proc = Path(f"/proc/{pid}")
    try:
        status = (proc / "status").read_text().splitlines()
        tasks = sorted((proc / "task").iterdir(), key=lambda t: int(t.name))
        threads = [
            f"  thread {t.name} {(t / 'comm').read_text().strip()}: "
            f"{(t / 'stat').read_text().rsplit(')', 1)[1].split()[0]} in {(t / 'wchan').read_text() or '-'}"
            for t in tasks
        ]
    except OSError as exc:
        return f"pid {pid}: gone while being read ({exc})"
    wanted = ("Name", "State", "PPid", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    fields = [line for line in status if line.split(":")[0] in wanted]
    return "\n".join([f"pid {pid}:", *(f"  {f}" for f in fields), *threads])


def _workers_of(data_dir: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "agent.jobs.worker" in cmdline and any(str(data_dir) in arg for arg in cmdline):
            found.append(proc.info["pid"])
    return found


def test_kill_9_while_jobs_run_loses_nothing_and_runs_nothing_twice(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    script, markers = tmp_path / "job.py", tmp_path / "markers"
    script.write_text(JOB_SCRIPT)
    markers.mkdir()
    configure(tmp_path, "crashy", jobs_allowed_commands=[sys.executable], jobs_max_running=4, jobs_threads=8)
    agent = start_agent("crashy", mdns=False)
    token = pair(agent)
    rng = random.Random(4)
    acknowledged: dict[str, int] = {}
    with raw_client(agent, token) as client:
        deploy(client, tmp_path)
    for round_ in range(12):
        if round_:
            agent.start()
        with raw_client(agent, token) as client:
            for n in range(3):
                retries = rng.choice([0, 5])
                tag = f"r{round_}-{n}"
                job = submit(
                    client,
                    "command",
                    {"argv": [sys.executable, str(script), str(markers), tag, str(rng.uniform(0.2, 1.0))]},
                    max_retries=retries,
                    retry_backoff_s=0,
                    label=tag,
                )
                acknowledged[job["job_id"]] = retries
            bench = submit(
                client, "benchmark", {"model": "tiny", "runs": 200}, max_retries=5, retry_backoff_s=0
            )
            acknowledged[bench["job_id"]] = 5
        time.sleep(rng.uniform(0.3, 1.2))
        agent.kill()
        _wait_for_no_workers(agent.data_dir)
    agent.start()
    with raw_client(agent, token) as client:
        jobs = _all_finished(client, set(acknowledged), timeout=60)
    agent.stop()
    for job_id, retries in acknowledged.items():
        job = jobs[job_id]
        assert job["state"] in ("done", "interrupted"), job
        if job["state"] == "interrupted":
            assert retries == 0 or job["attempts"] > retries, job
            assert "stopped unexpectedly" in str(job["error"]), job
        elif job["kind"] == "command":
            assert (markers / f"{job['label']}.runs").exists(), "done means it ran to the end"
    assert not list(markers.glob("*.overlap")), "no job ever ran twice at once"
    assert sum(j["state"] == "done" for j in jobs.values()) >= len(acknowledged) // 2
    with sqlite3.connect(agent.data_dir / "agent.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_hundreds_of_queued_jobs_respect_priority_and_resources(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    configure(
        tmp_path,
        "busy",
        jobs_allowed_commands=["/bin/true", "/bin/sleep"],
        jobs_threads=4,
        jobs_max_running=4,
        jobs_aging_s=1e9,
    )
    agent = start_agent("busy", mdns=False)
    rng = random.Random(7)
    with raw_client(agent, pair(agent)) as client:
        # a job holding every thread keeps the queue shut until all 200 are in
        blocker = submit(
            client, "command", {"argv": ["/bin/sleep", "60"]}, resources={"threads": 4}, priority=100
        )
        asks = [(rng.randint(-5, 5), rng.choice([1, 2, 3])) for _ in range(200)]
        with ThreadPoolExecutor(8) as pool:  # submitted concurrently, as several laptops might
            ids = set(
                pool.map(
                    lambda ask: submit(
                        client,
                        "command",
                        {"argv": ["/bin/true"]},
                        priority=ask[0],
                        resources={"threads": ask[1]},
                    )["job_id"],
                    asks,
                )
            )
        assert client.get("/v1/jobs", params={"state": "running"}).json()[0]["job_id"] == blocker["job_id"]
        client.post(f"/v1/jobs/{blocker['job_id']}/cancel").raise_for_status()
        # each job starts a worker process: 200 of them take a minute or more on a busy machine
        everything = _all_finished(client, ids, timeout=240)
    jobs = [everything[i] for i in ids]
    states = collections.Counter(j["state"] for j in jobs)
    assert states == {"done": len(ids)}, f"every job done: {dict(states)}"
    by_start = sorted(jobs, key=lambda j: (j["started_at"], j["job_id"]))
    priorities = [j["request"]["priority"] for j in by_start]
    assert priorities == sorted(priorities, reverse=True), "higher priority always started first"
    for job in by_start:
        running = [j for j in jobs if j["started_at"] <= job["started_at"] < j["finished_at"]]
        assert sum(j["request"]["resources"]["threads"] for j in running) <= 4
        assert len(running) <= 4


def test_a_cron_schedule_fires_after_a_restart(start_agent: AgentFactory, tmp_path: Path) -> None:
    configure(tmp_path, "cron", jobs_allowed_commands=["/bin/true"])
    agent = start_agent("cron", mdns=False)
    token = pair(agent)
    template = {"kind": "command", "params": {"argv": ["/bin/true"]}}
    with raw_client(agent, token) as client:
        made = client.post(
            "/v1/schedules",
            json={"name": "every-2s", "cron": "* * * * * */2", "job": template, "missed": "run_once"},
        )
        assert made.status_code == 201, made.text
        schedule_id = made.json()["schedule_id"]
    agent.kill()
    time.sleep(2.5)  # at least one run is missed while the agent is down
    restarted = time.time()
    agent.start()
    with raw_client(agent, token) as client:
        deadline = time.monotonic() + 15
        while True:
            fired = [
                j
                for j in client.get("/v1/jobs", params={"schedule_id": schedule_id}).json()
                if j["created_at"] >= restarted and j["state"] == "done"
            ]
            if fired or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert fired, "the schedule queued a job after the restart"
        assert client.get(f"/v1/schedules/{schedule_id}").json()["next_run_at"] > restarted
        assert client.delete(f"/v1/schedules/{schedule_id}").status_code == 204


def _spares_of(data_dir: Path) -> list[psutil.Process]:
    return [
        proc
        for proc in psutil.process_iter(["pid", "cmdline"])
        if "--spare" in (proc.info["cmdline"] or []) and str(data_dir) in " ".join(proc.info["cmdline"])
    ]


@pytest.fixture
def own_group_at_3() -> Iterator[None]:
    """This session's autogroup (an agent started here shares it) at nice 3 meanwhile, unlike
    a new session's, where it has one (the kernel's default group has no nice value: CI's)."""
    before = autogroup_nice()
    if before is None:
        yield
        return
    set_autogroup_nice(os.getpid(), 3)
    try:
        yield
    finally:
        set_autogroup_nice(os.getpid(), before)


@pytest.mark.usefixtures("own_group_at_3")
def test_a_worker_kept_ready_runs_the_next_job_alone_and_dies_with_its_agent(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    """After a first (cold) model job the agent keeps a spare worker; the next one runs in it, in
    the job's own folder; a kill -9 of the agent takes the spare and the job's worker with it,
    and a job left running in a spare is recovered on restart like any other. A spare waits at
    the lowest priority (its session's autogroup, and its threads where the agent may set them
    back: root here), and its job runs at a cold worker's priority, every thread of it."""
    configure(tmp_path, "warm", jobs_threads=4)
    agent = start_agent("warm", mdns=False)
    token = pair(agent)
    own = os.getpriority(os.PRIO_PROCESS, 0)  # the agent's, inherited from this process
    waiting = SPARE_NICE if may_restore_priority(own) else own
    with raw_client(agent, token) as client:
        deploy(client, tmp_path)
        first = submit(client, "benchmark", {"model": "tiny", "runs": 20})
        assert wait(client, first["job_id"])["state"] == "done"
        assert "started cold" in client.get(f"/v1/jobs/{first['job_id']}/logs").json()["text"]
        [spare] = _wait_for_spares(agent.data_dir)
        assert _priorities(spare.pid) == {waiting}, "a spare waits at the lowest priority"
        group = autogroup_nice(spare.pid)  # its session's scheduling group (None: no autogroups)
        assert group in (None, SPARE_NICE), "its session's group waits at the lowest priority too"
        second = submit(client, "benchmark", {"model": "tiny", "runs": 20}, resources={"threads": 3})
        assert wait(client, second["job_id"])["state"] == "done"
        assert "worker kept ready" in client.get(f"/v1/jobs/{second['job_id']}/logs").json()["text"]
        assert not spare.is_running(), "one spare runs one job, then it is gone"
        [spare] = _wait_for_spares(agent.data_dir)
        deploy_detector(client)
        long = submit(client, "benchmark", {"model": "shapes-yolo", "runs": 100000}, max_retries=1)
        _wait_for_job_in(spare, long["job_id"])
        time.sleep(1)  # its model loaded and its threads started
        assert _priorities(spare.pid) == {own}, "the job runs at the agent's priority"
        # a new session's group's, as a cold worker's, whatever the agent's (CI's is the kernel's
        # default group, which has no nice value)
        assert autogroup_nice(spare.pid) == (None if group is None else NEW_GROUP_NICE)
        if len(os.sched_getaffinity(0)) > 1:  # a core is free of jobs: the next spare starts
            [following] = _wait_for_spares(agent.data_dir, besides=spare.pid)
            assert _priorities(following.pid) == {waiting}
    workers = [psutil.Process(pid) for pid in _workers_of(agent.data_dir)]
    assert workers, "the job's worker (and the next spare)"
    agent.kill()
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "no worker, spare or not, outlives its agent"
    agent.start()
    with raw_client(agent, token) as client:
        job = client.get(f"/v1/jobs/{long['job_id']}").json()
        assert job["state"] in ("queued", "running"), job
        assert "stopped unexpectedly" in str(job["error"]), job
        client.post(f"/v1/jobs/{long['job_id']}/cancel")
    agent.stop()


@pytest.mark.parametrize("kind", ["benchmark holding every core", "stream on one thread"])
def test_no_spare_starts_beside_a_job_that_holds_every_core_or_a_stream(
    start_agent: AgentFactory, tmp_path: Path, kind: str
) -> None:
    """A spare's imports take a second of CPU: while jobs hold every core the agent may use, or a
    stream runs (its answers at a camera's pace would wait behind them), the spare a job took is
    not replaced; the next one starts once that job has ended."""
    cores = len(os.sched_getaffinity(0))
    configure(tmp_path, "busy", jobs_threads=cores)
    agent = start_agent("busy", mdns=False)
    token = pair(agent)
    with raw_client(agent, token) as client:
        deploy_detector(client)
        write_video(agent.data_dir / "datasets" / "clip.mp4", seconds=1)
        first = submit(client, "benchmark", {"model": "shapes-yolo", "runs": 5})
        assert wait(client, first["job_id"])["state"] == "done"
        [spare] = _wait_for_spares(agent.data_dir)  # no job runs: every core is free
        if kind.startswith("stream"):
            looping = {"model": "shapes-yolo", "source": "clip.mp4", "loop": True, "keep": ["counts"]}
            job = submit(client, "stream", looping)
        else:
            job = submit(
                client, "benchmark", {"model": "shapes-yolo", "runs": 100000}, resources={"threads": cores}
            )
        _wait_for_job_in(spare, job["job_id"])
        time.sleep(2.5)  # the runner passes every second while a job runs: two passes at least
        assert [p.pid for p in _spares_of(agent.data_dir) if p.pid != spare.pid] == []
        client.post(f"/v1/jobs/{job['job_id']}/cancel")
        assert wait(client, job["job_id"])["state"] == "cancelled"
        _wait_for_spares(agent.data_dir, besides=spare.pid)
    agent.stop()


def _priorities(pid: int) -> set[int]:
    """The nice values of a process's threads (Linux keeps one per thread)."""
    return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def _wait_for_job_in(spare: psutil.Process, job_id: str) -> None:
    """Until the spare works in the job's folder: it has taken the job."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if spare.cwd().endswith(job_id):
            return
        time.sleep(0.05)
    raise AssertionError(f"the spare did not take job {job_id}")


def _wait_for_spares(data_dir: Path, besides: int | None = None) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        spares = [p for p in _spares_of(data_dir) if p.pid != besides]
        if spares:
            return spares
        time.sleep(0.1)
    raise AssertionError("no spare worker was started")


def test_an_idle_runner_wakes_for_a_job_held_until_later(start_agent: AgentFactory, tmp_path: Path) -> None:
    """Nothing runs and nothing is submitted after it: the runner, sleeping between events,
    still starts a job held by not_before when that time comes (not at its next sweep)."""
    configure(tmp_path, "sleepy", jobs_allowed_commands=["/bin/true"])
    agent = start_agent("sleepy", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        held = submit(client, "command", {"argv": ["/bin/true"]}, not_before=time.time() + 3)
        assert client.get(f"/v1/jobs/{held['job_id']}").json()["state"] == "queued"
        done = wait(client, held["job_id"], timeout=40)
    assert done["state"] == "done", done
    assert done["started_at"] >= held["request"]["not_before"]
