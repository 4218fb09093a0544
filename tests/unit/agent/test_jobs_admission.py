"""Admission: resources never oversubscribed, priority order with aging, windows and gates."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.api.errors import status_of
from agent.db import Database
from agent.errors import Refusal
from agent.jobs.admission import Capacity, Gatekeeper, admissible, in_window, total
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.wire import Gates, JobRequest, Resources

KIT = Capacity(threads=4, memory_mb=1000, gpu=0)
NOW = 2_000_000.0

ADMIN = Submitter("admin-token", "admin")  # command jobs need one


def job(threads: int = 1, priority: int = 0, **extra: object) -> JobRequest:
    return JobRequest.model_validate(
        {
            "kind": "command",
            "params": {"argv": ["/bin/true"]},
            "priority": priority,
            "resources": {"threads": threads},
            **extra,
        }
    )


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


def queue_of(db: Database, *requests: JobRequest) -> tuple[JobQueue, list[str]]:
    queue = JobQueue(db, clock=Clock())
    return queue, [queue.submit(r, ADMIN)[0].job_id for r in requests]


def start(
    queue: JobQueue,
    held: Resources | None = None,
    slots: int = 100,
    gatekeeper: Gatekeeper | None = None,
    aging_s: float = 600,
) -> list[str]:
    rows = queue.candidates(queue.clock(), aging_s)
    chosen = admissible(rows, KIT, held or total([]), slots, queue.clock(), gatekeeper or Gatekeeper())
    return [job_id for job_id, _ in chosen]


def test_impossible_requests_are_refused_with_what_the_kit_has() -> None:
    for need in (Resources(threads=5), Resources(memory_mb=1001), Resources(gpu=1)):
        with pytest.raises(Refusal) as refused:
            KIT.refuse_impossible(need)
        assert (status_of(refused.value), refused.value.error) == (422, "impossible_resources")
    KIT.refuse_impossible(Resources(threads=4, memory_mb=1000))


def test_the_kit_detects_its_own_capacity() -> None:
    kit = Capacity.of_kit(0, 0, 0)
    assert kit.threads >= 1
    assert kit.memory_mb >= 64


def test_higher_priority_starts_first_and_resources_are_never_oversubscribed(db: Database) -> None:
    queue, (_low, high, mid) = queue_of(db, job(2, priority=-5), job(2, priority=9), job(2, priority=1))
    assert start(queue) == [high, mid], "4 threads: two 2-thread jobs, the two most urgent"
    assert start(queue, held=Resources(threads=3)) == [], "one thread left fits none"


def test_a_job_that_does_not_fit_is_not_overtaken(db: Database) -> None:
    queue, (_big, _small) = queue_of(db, job(4, priority=5), job(1, priority=0))
    assert start(queue, held=Resources(threads=1)) == [], "no backfilling past the waiting big job"


def test_waiting_raises_effective_priority(db: Database) -> None:
    queue = JobQueue(db, clock=Clock())
    old = queue.submit(job(4, priority=0), ADMIN)[0].job_id
    queue.clock.now += 3600  # type: ignore[attr-defined]
    urgent = queue.submit(job(4, priority=3), ADMIN)[0].job_id
    assert start(queue, aging_s=600) == [old], "an hour of waiting is worth 6 levels"
    assert start(queue, aging_s=1e9) == [urgent]


def test_slots_bound_how_many_start(db: Database) -> None:
    queue, ids = queue_of(db, *(job(1) for _ in range(4)))
    assert start(queue, slots=2) == ids[:2]


def test_not_before_window_and_gates_hold_only_their_own_job(db: Database) -> None:
    hour = dt.datetime.fromtimestamp(NOW).hour
    closed = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    hot = Gatekeeper(battery=lambda: (15.0, False), temperature=lambda: 90.0)
    queue, ids = queue_of(
        db,
        job(priority=9, not_before=NOW + 60),
        job(priority=8, window=closed),
        job(priority=7, gates={"min_battery_percent": 30}),
        job(priority=6, gates={"max_temperature_c": 80}),
        job(priority=0),
    )
    assert start(queue, gatekeeper=hot) == [ids[4]]


def test_run_windows_wrap_midnight() -> None:
    def at(hour: int, minute: int = 0) -> float:
        return dt.datetime(2026, 1, 5, hour, minute).timestamp()

    assert in_window("22:00-06:00", at(23))
    assert in_window("22:00-06:00", at(5, 59))
    assert not in_window("22:00-06:00", at(6))
    assert not in_window("22:00-06:00", at(12))
    assert in_window("09:00-17:00", at(9))
    assert not in_window("09:00-17:00", at(17))
    assert in_window(None, at(3))


def test_gates_pass_on_mains_power_and_without_sensors() -> None:
    gates = Gates(min_battery_percent=50, max_temperature_c=70)
    assert Gatekeeper(battery=lambda: (10.0, True), temperature=lambda: None).blocked(gates) is None
    assert Gatekeeper(battery=lambda: None, temperature=lambda: 60.0).blocked(gates) is None
    assert "battery" in (
        Gatekeeper(battery=lambda: (10.0, False), temperature=lambda: None).blocked(gates) or ""
    )


def test_a_gate_without_its_sensor_is_said_to_be_unenforceable() -> None:
    gates = Gates(min_battery_percent=50, max_temperature_c=70)
    bare = Gatekeeper(battery=lambda: None, temperature=lambda: None)
    said = bare.unenforceable(gates)
    assert [s.split(":")[0] for s in said] == ["gate not enforceable"] * 2
    assert "battery above 50%" in said[0]
    assert "temperature below 70 °C" in said[1]
    assert bare.blocked(gates) is None  # and, as said, it holds nothing back
    sensing = Gatekeeper(battery=lambda: (80.0, False), temperature=lambda: 40.0)
    assert sensing.unenforceable(gates) == []
    assert bare.unenforceable(Gates()) == []  # no gates, nothing to say
    assert len(Gatekeeper(battery=lambda: (80.0, True), temperature=lambda: None).unenforceable(gates)) == 1
