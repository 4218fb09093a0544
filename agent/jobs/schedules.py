"""Cron schedules that queue jobs from a template, on the kit's local clock.

`next_run_at` is stored, so schedules survive restarts. When the agent finds a run
more than `MISFIRE_GRACE_S` late (it was down, or the kit slept), the schedule's
`missed` policy decides: `skip` drops the missed runs, `run_once` queues one job for
all of them. Either way the next run is the first cron time after now. The job and
the schedule's new `next_run_at` are committed together, so a crash cannot fire twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from typing import Any

from agent.errors import Invalid, NotFound, Refusal
from agent.jobs.queue import JobQueue, new_id
from agent.jobs.submitter import UNKNOWN, Submitter
from agent.wire import JobRequest, ScheduleInfo, ScheduleRequest, ScheduleUpdate

log = logging.getLogger(__name__)
MISFIRE_GRACE_S = 60.0


def next_after(cron: str, when: float) -> float:
    """The first time after `when` that `cron` names, on the kit's local clock (DST aware)."""
    from croniter import croniter  # imported on first use: most kits have no schedule

    start = dt.datetime.fromtimestamp(when).astimezone()
    return float(croniter(cron, start).get_next(dt.datetime).timestamp())


def check_cron(cron: str, now: float) -> float:
    """The next run time, or 422 for an expression that is invalid or never fires."""
    from croniter import CroniterError

    fields = len(cron.split())
    try:
        if fields not in (5, 6):
            raise ValueError(f"it has {fields} fields")
        return next_after(cron, now)
    except (CroniterError, ValueError, KeyError) as exc:
        raise Invalid(
            "invalid_cron",
            f"{cron!r} is not a usable cron expression ({exc})",
            "use 5 fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' "
            "(a 6th field is seconds)",
        ) from None


class Schedules:
    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.db = queue.db

    def create(
        self, request: ScheduleRequest, creator: Submitter = UNKNOWN, schedule_id: str | None = None
    ) -> ScheduleInfo:
        """A new schedule; its jobs carry `creator` as their submitter, held to the same rules."""
        if request.job.idempotency_key is not None:
            raise Invalid(
                "idempotency_key_in_template",
                "a schedule's job cannot carry an idempotency key",
                "leave it out: each run gets its own key",
            )
        now = self.queue.clock()
        next_run = check_cron(request.cron, now)
        schedule_id = schedule_id or new_id()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO schedules (id, name, cron, template, missed, enabled, next_run_at,"
                " created_at, updated_at, created_by, creator_scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    schedule_id,
                    request.name,
                    request.cron,
                    request.job.model_dump_json(),
                    request.missed,
                    int(request.enabled),
                    next_run,
                    now,
                    now,
                    creator.token_id,
                    creator.scope,
                ),
            )
        return self.get(schedule_id)

    def get(self, schedule_id: str) -> ScheduleInfo:
        rows = self.db.query("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
        if not rows:
            raise NotFound(
                "schedule_not_found",
                f"no schedule with id {schedule_id!r}",
                "`kitfleet jobs schedules KIT` lists them",
            )
        return _info(rows[0])

    def all(self) -> list[ScheduleInfo]:
        return [_info(row) for row in self.db.query("SELECT * FROM schedules ORDER BY created_at")]

    def update(self, schedule_id: str, change: ScheduleUpdate) -> ScheduleInfo:
        current = self.get(schedule_id)
        cron = change.cron or current.cron
        next_run = check_cron(cron, self.queue.clock())
        enabled = current.enabled if change.enabled is None else change.enabled
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE schedules SET cron = ?, missed = ?, enabled = ?, next_run_at = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    cron,
                    change.missed or current.missed,
                    int(enabled),
                    next_run,
                    self.queue.clock(),
                    schedule_id,
                ),
            )
        return self.get(schedule_id)

    def delete(self, schedule_id: str) -> None:
        self.get(schedule_id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))

    def next_run(self) -> float | None:
        """When the first enabled schedule is next due, for the runner's sleep."""
        row = self.db.query("SELECT min(next_run_at) FROM schedules WHERE enabled = 1")
        return None if row[0][0] is None else float(row[0][0])

    def fire_due(self) -> list[str]:
        """Queue the jobs of every schedule that is due; returns their ids."""
        now = self.queue.clock()
        due = self.db.query("SELECT id FROM schedules WHERE enabled = 1 AND next_run_at <= ?", (now,))
        fired = []
        for row in due:
            with self.db.transaction() as conn:
                job_id = self._fire(conn, str(row["id"]), now)
            if job_id is not None:
                fired.append(job_id)
        return fired

    def _fire(self, conn: sqlite3.Connection, schedule_id: str, now: float) -> str | None:
        row = conn.execute(
            "SELECT * FROM schedules WHERE id = ? AND enabled = 1 AND next_run_at <= ?", (schedule_id, now)
        ).fetchone()
        if row is None:  # changed since we looked
            return None
        late = now - row["next_run_at"]
        job_id = None
        if late <= MISFIRE_GRACE_S or row["missed"] == "run_once":
            job_id = self._queue_run(conn, row)
        else:
            log.info("schedule %s (%s) skipped a run missed by %.0f s", row["name"], schedule_id, late)
        conn.execute(
            "UPDATE schedules SET next_run_at = ?, last_run_at = ?, last_job_id = ?,"
            " updated_at = ? WHERE id = ?",
            (
                next_after(row["cron"], now),
                row["next_run_at"] if job_id else row["last_run_at"],
                job_id or row["last_job_id"],
                now,
                schedule_id,
            ),
        )
        return job_id

    def _queue_run(self, conn: sqlite3.Connection, row: sqlite3.Row) -> str | None:
        template = json.loads(row["template"])
        # one key per due time: the same run can never be queued twice
        template["idempotency_key"] = f"schedule:{row['id']}:{row['next_run_at']:.0f}"
        try:
            creator = Submitter(row["created_by"], row["creator_scope"])
            job_id, _ = self.queue.insert(conn, JobRequest.model_validate(template), row["id"], creator)
        except Refusal as exc:  # e.g. the queue is full: this run is lost, say so
            log.warning("schedule %s could not queue its job: %s", row["name"], exc.message)
            return None
        return job_id


def _info(row: sqlite3.Row) -> ScheduleInfo:
    template: dict[str, Any] = json.loads(row["template"])
    return ScheduleInfo(
        schedule_id=row["id"],
        name=row["name"],
        cron=row["cron"],
        job=JobRequest.model_validate(template),
        missed=row["missed"],
        enabled=bool(row["enabled"]),
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        last_job_id=row["last_job_id"],
        created_at=row["created_at"],
    )
