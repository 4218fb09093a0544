"""The durable queue with a real SQLite database: acknowledgement, idempotency, cancel, collect."""

from __future__ import annotations

import sqlite3

import pytest

from agent.api.errors import status_of
from agent.db import Database
from agent.errors import Refusal
from agent.jobs.leases import Leases
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.wire import JobRequest

ADMIN = Submitter("admin-token", "admin")  # command jobs need one


def command(*argv: str, **extra: object) -> JobRequest:
    return JobRequest.model_validate(
        {"kind": "command", "params": {"argv": list(argv or ["/bin/true"])}, **extra}
    )


def test_a_submitted_job_is_on_disk_before_it_is_answered(db: Database) -> None:
    job, created = JobQueue(db).submit(command(label="first"), ADMIN)
    assert created
    assert (job.state, job.attempts, job.label) == ("queued", 0, "first")
    # another connection (another process after a power cut) sees the committed row
    with sqlite3.connect(db.path) as other:
        assert other.execute("SELECT state FROM jobs WHERE id = ?", (job.job_id,)).fetchone() == ("queued",)


def test_the_same_idempotency_key_is_the_same_job(db: Database) -> None:
    queue = JobQueue(db)
    first, created = queue.submit(command(idempotency_key="nightly-1"), ADMIN)
    again, created_again = queue.submit(command(idempotency_key="nightly-1"), ADMIN)
    assert created
    assert not created_again
    assert again.job_id == first.job_id
    assert len(queue.find()) == 1


def test_a_key_reused_for_another_job_is_refused(db: Database) -> None:
    queue = JobQueue(db)
    queue.submit(command("/bin/true", idempotency_key="k"), ADMIN)
    with pytest.raises(Refusal) as refused:
        queue.submit(command("/bin/false", idempotency_key="k"), ADMIN)
    assert (status_of(refused.value), refused.value.error) == (409, "idempotency_key_reused")


def test_a_full_queue_refuses_with_429(db: Database) -> None:
    queue = JobQueue(db, max_queued=2)
    queue.submit(command(), ADMIN)
    queue.submit(command(), ADMIN)
    with pytest.raises(Refusal) as refused:
        queue.submit(command(), ADMIN)
    assert status_of(refused.value) == 429


def test_cancel_a_queued_job_then_a_finished_one(db: Database) -> None:
    queue = JobQueue(db)
    job, _ = queue.submit(command(), ADMIN)
    assert queue.cancel_queued(job.job_id)
    assert queue.get(job.job_id).state == "cancelled"
    with pytest.raises(Refusal) as refused:
        queue.cancel_queued(job.job_id)
    assert (status_of(refused.value), refused.value.error) == (409, "job_finished")


def test_cancel_of_a_running_job_is_left_to_the_runner(db: Database) -> None:
    queue = JobQueue(db)
    job, _ = queue.submit(command(), ADMIN)
    assert Leases(queue, "me", 30).claim(job.job_id)
    assert not queue.cancel_queued(job.job_id)
    assert queue.get(job.job_id).state == "running"


def test_unknown_jobs_are_404(db: Database) -> None:
    queue = JobQueue(db)
    for call in (queue.get, queue.cancel_queued, queue.delete):
        with pytest.raises(Refusal) as refused:
            call("0" * 24)
        assert (status_of(refused.value), refused.value.error) == (404, "job_not_found")


def test_only_finished_jobs_are_collected(db: Database) -> None:
    queue = JobQueue(db)
    job, _ = queue.submit(command(), ADMIN)
    with pytest.raises(Refusal) as refused:
        queue.delete(job.job_id)
    assert status_of(refused.value) == 409
    queue.cancel_queued(job.job_id)
    queue.delete(job.job_id)
    assert queue.find() == []


def test_find_filters_by_state_and_kind(db: Database) -> None:
    queue = JobQueue(db)
    a, _ = queue.submit(command(), ADMIN)
    queue.submit(command(), ADMIN)
    queue.cancel_queued(a.job_id)
    assert [j.job_id for j in queue.find(states=["cancelled"])] == [a.job_id]
    assert len(queue.find(states=["queued"], kind="command")) == 1
    assert queue.find(kind="benchmark") == []
