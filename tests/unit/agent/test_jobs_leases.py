"""Claims, retries with back-off, and recovery of jobs a dead agent left running."""

from __future__ import annotations

import pytest

from agent.db import Database
from agent.jobs.leases import Leases
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.wire import JobRequest

ADMIN = Submitter("admin-token", "admin")  # command jobs need one


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Database, clock: Clock) -> JobQueue:
    return JobQueue(db, clock=clock)


def submit(queue: JobQueue, retries: int = 0, backoff: float = 10.0) -> str:
    request = JobRequest.model_validate(
        {
            "kind": "command",
            "params": {"argv": ["/bin/true"]},
            "max_retries": retries,
            "retry_backoff_s": backoff,
        }
    )
    return queue.submit(request, ADMIN)[0].job_id


def test_a_job_is_claimed_once_and_the_attempt_counted(queue: JobQueue) -> None:
    job_id = submit(queue)
    first, second = Leases(queue, "agent-a", 30), Leases(queue, "agent-b", 30)
    assert first.claim(job_id)
    assert not second.claim(job_id), "never run twice at once"
    row = queue.row(job_id)
    assert (row["state"], row["attempts"], row["lease_owner"]) == ("running", 1, "agent-a")


def test_failures_retry_with_exponential_back_off_then_fail(queue: JobQueue, clock: Clock) -> None:
    job_id = submit(queue, retries=2, backoff=10.0)
    leases = Leases(queue, "me", 30)
    delays = []
    for _ in range(2):
        assert leases.claim(job_id)
        assert leases.fail(job_id, "exit 1", permanent=False).state == "queued"
        delays.append(queue.row(job_id)["not_before"] - clock.now)
        clock.now = queue.row(job_id)["not_before"]
    assert delays == [10.0, 20.0]
    assert leases.claim(job_id)
    ending = leases.fail(job_id, "exit 1", permanent=False)
    job = queue.get(job_id)
    assert (ending.state, job.state, job.attempts, job.error) == ("failed", "failed", 3, "exit 1")


def test_a_permanent_failure_is_not_retried(queue: JobQueue) -> None:
    job_id = submit(queue, retries=5)
    leases = Leases(queue, "me", 30)
    leases.claim(job_id)
    assert leases.fail(job_id, "model gone", permanent=True).state == "failed"


def test_recovery_requeues_while_retries_remain_else_interrupts(queue: JobQueue) -> None:
    retried, last_try = submit(queue, retries=1), submit(queue, retries=0)
    dead = Leases(queue, "dead-agent", 30)
    assert dead.claim(retried)
    assert dead.claim(last_try)
    endings = dict(Leases(queue, "new-agent", 30).recover(set()))
    assert endings[retried].state == "queued"
    assert endings[last_try].state == "interrupted"
    interrupted = queue.get(last_try)
    assert interrupted.state == "interrupted"
    assert "agent stopped unexpectedly" in (interrupted.error or "")
    assert queue.get(retried).attempts == 1, "the cut-short attempt counts"
    assert queue.find(states=["running"]) == [], "nothing is left running"


def test_recovery_records_a_finished_attempt_done_instead_of_running_it_again(queue: JobQueue) -> None:
    """The worker kept its outcome, then the agent died before recording it: done, not re-run."""
    finished, cut_short = submit(queue, retries=3), submit(queue, retries=3)
    dead = Leases(queue, "dead-agent", 30)
    assert dead.claim(finished)
    assert dead.claim(cut_short)
    kept = {finished: {"rows": 12}}
    endings = dict(Leases(queue, "new-agent", 30).recover(set(), kept.get))
    assert endings[finished].state == "done"
    assert endings[cut_short].state == "queued"
    job = queue.get(finished)
    assert (job.state, job.result, job.attempts) == ("done", {"rows": 12}, 1)


def test_a_stale_owner_cannot_finish_a_recovered_job(queue: JobQueue) -> None:
    job_id = submit(queue, retries=3)
    old = Leases(queue, "old", 30)
    old.claim(job_id)
    Leases(queue, "new", 30).recover(set())
    old.finish(job_id, {"late": True})
    assert queue.get(job_id).state == "queued"


def test_an_expired_lease_of_this_agent_is_recovered(queue: JobQueue, clock: Clock) -> None:
    job_id = submit(queue, retries=1)
    leases = Leases(queue, "me", 30)
    leases.claim(job_id)
    assert leases.recover(set()) == [], "a live lease is left alone"
    clock.now += 31
    assert next(state for _, state in leases.recover(set())).state == "queued"


def test_a_clean_stop_requeues_without_using_a_retry(queue: JobQueue) -> None:
    job_id = submit(queue)
    leases = Leases(queue, "me", 30)
    leases.claim(job_id)
    leases.release(job_id)
    job = queue.get(job_id)
    assert (job.state, job.attempts) == ("queued", 0)


def test_renew_extends_leases_and_stores_progress(queue: JobQueue, clock: Clock) -> None:
    job_id = submit(queue)
    leases = Leases(queue, "me", 30)
    leases.claim(job_id)
    clock.now += 20
    leases.renew({job_id: (5, 10)})
    row = queue.row(job_id)
    assert row["lease_expires_at"] == clock.now + 30
    assert (row["progress_done"], row["progress_total"]) == (5, 10)
