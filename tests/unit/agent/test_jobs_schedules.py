"""Cron schedules with a real database and a fake clock: validation and the missed-run policy."""

from __future__ import annotations

import pytest

from agent.api.errors import status_of
from agent.db import Database
from agent.errors import Refusal
from agent.jobs.queue import JobQueue
from agent.jobs.schedules import MISFIRE_GRACE_S, Schedules
from agent.wire import JobRequest, ScheduleRequest, ScheduleUpdate

START = 1_800_000_000.0  # a Unix time well inside 2027


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def schedule(cron: str = "*/5 * * * *", missed: str = "skip") -> ScheduleRequest:
    job = JobRequest.model_validate({"kind": "command", "params": {"argv": ["/bin/true"]}})
    return ScheduleRequest.model_validate(
        {"name": "nightly", "cron": cron, "job": job.model_dump(), "missed": missed}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def schedules(db: Database, clock: Clock) -> Schedules:
    return Schedules(JobQueue(db, clock=clock))


@pytest.mark.parametrize("cron", ["bad", "61 * * * *", "* * * *", "0 0 * * * * 2030", "0 0 31 2 *", ""])
def test_invalid_cron_is_refused(schedules: Schedules, cron: str) -> None:
    with pytest.raises((Refusal, ValueError)) as refused:
        schedules.create(schedule(cron=cron or " "))
    if isinstance(refused.value, Refusal):
        assert (status_of(refused.value), refused.value.error) == (422, "invalid_cron")


def test_a_due_schedule_queues_one_job_and_moves_on(schedules: Schedules, clock: Clock) -> None:
    made = schedules.create(schedule())
    assert made.next_run_at is not None
    assert made.next_run_at > START
    assert schedules.fire_due() == []
    clock.now = made.next_run_at + 1
    [job_id] = schedules.fire_due()
    assert schedules.fire_due() == [], "a run fires once"
    after = schedules.get(made.schedule_id)
    assert after.last_job_id == job_id
    assert after.next_run_at == made.next_run_at + 300
    job = schedules.queue.get(job_id)
    assert job.schedule_id == made.schedule_id


@pytest.mark.parametrize(("missed", "jobs"), [("skip", 0), ("run_once", 1)])
def test_runs_missed_while_down_follow_the_policy(
    schedules: Schedules, clock: Clock, missed: str, jobs: int
) -> None:
    made = schedules.create(schedule(missed=missed))
    assert made.next_run_at is not None
    clock.now = made.next_run_at + 3600  # the agent was off for an hour: twelve runs missed
    assert len(schedules.fire_due()) == jobs
    assert schedules.get(made.schedule_id).next_run_at == made.next_run_at + 3600 + 300


def test_a_run_within_the_grace_period_is_not_missed(schedules: Schedules, clock: Clock) -> None:
    made = schedules.create(schedule(missed="skip"))
    assert made.next_run_at is not None
    clock.now = made.next_run_at + MISFIRE_GRACE_S - 1
    assert len(schedules.fire_due()) == 1


def test_schedules_survive_a_restart(db: Database, clock: Clock) -> None:
    made = Schedules(JobQueue(db, clock=clock)).create(schedule())
    db.close()
    reopened = Database.open(db.path.parent)
    try:
        again = Schedules(JobQueue(reopened, clock=clock))
        assert again.get(made.schedule_id) == made
        assert made.next_run_at is not None
        clock.now = made.next_run_at
        assert len(again.fire_due()) == 1
    finally:
        reopened.close()


def test_pause_resume_and_delete(schedules: Schedules, clock: Clock) -> None:
    made = schedules.create(schedule())
    paused = schedules.update(made.schedule_id, ScheduleUpdate(enabled=False))
    assert not paused.enabled
    clock.now += 3600
    assert schedules.fire_due() == []
    with pytest.raises(Refusal):
        schedules.update(made.schedule_id, ScheduleUpdate(cron="nope"))
    schedules.delete(made.schedule_id)
    with pytest.raises(Refusal) as gone:
        schedules.get(made.schedule_id)
    assert status_of(gone.value) == 404
