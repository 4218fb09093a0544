"""Jobs as rows in the agent's SQLite: submit, read, cancel and collect.

A job is acknowledged only once its row is committed (WAL, synchronous=FULL), so a
201 means the job survives a power cut. What the runner does with rows (claims,
leases, recovery) lives in `leases.py`.

Nothing here grows with the queue: the unfinished count is a row that triggers keep in
the same transaction as each change (right after any crash), and the pick order
(priority plus one level per `aging_s` waited) is a stored key, `queued_at - priority *
aging_s`, read in order from a partial index over queued rows.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence

from agent.db import Database
from agent.errors import Busy, Conflict, NotFound
from agent.jobs.submitter import UNKNOWN, Submitter, require_scope
from agent.wire import FINISHED_STATES, JobInfo, JobProgress, JobRequest

UNFINISHED = ("queued", "running")
Clock = Callable[[], float]


def new_id() -> str:
    return secrets.token_hex(12)


class KeyFreed(Exception):
    """The idempotency key a submit found taken was freed (its job deleted) before the insert."""


class JobQueue:
    def __init__(
        self, db: Database, max_queued: int = 10000, clock: Clock = time.time, aging_s: float = 600.0
    ) -> None:
        self.db = db
        self.max_queued = max_queued
        self.clock = clock
        self.aging_s = aging_s
        self._rekey()

    def _rekey(self) -> None:
        """Make the stored pick keys again if they were made with another aging setting."""
        with self.db.transaction() as conn:
            stored = conn.execute("SELECT aging_s FROM job_order WHERE id = 1").fetchone()[0]
            if stored == self.aging_s:
                return
            conn.execute("UPDATE job_order SET aging_s = ? WHERE id = 1", (self.aging_s,))
            conn.execute(
                "UPDATE jobs SET pick_key = queued_at - priority * ? WHERE state IN ('queued', 'running')",
                (self.aging_s,),
            )

    def unfinished(self) -> int:
        """Queued and running jobs, from the trigger-kept count (no scan of the queue)."""
        return int(self.db.query("SELECT unfinished FROM job_counts WHERE id = 1")[0][0])

    def submit(
        self,
        request: JobRequest,
        submitter: Submitter = UNKNOWN,
        checked: bool = True,
        job_id: str | None = None,
    ) -> tuple[JobInfo, bool]:
        """(job, created): the same idempotency key again answers the job it made first.
        `checked` False: the caller skipped its checks because the key was taken; should the key
        have been freed since, KeyFreed is raised rather than a job made unchecked."""
        with self.db.transaction() as conn:
            job_id, created = self.insert(conn, request, None, submitter, checked, job_id)
        return self.get(job_id), created

    def insert(
        self,
        conn: sqlite3.Connection,
        request: JobRequest,
        schedule_id: str | None = None,
        submitter: Submitter = UNKNOWN,
        checked: bool = True,
        job_id: str | None = None,
    ) -> tuple[str, bool]:
        """Add a job inside the caller's transaction (schedules fire in theirs)."""
        key = request.idempotency_key
        if key is not None:
            row = conn.execute("SELECT id, request FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                _same_or_conflict(row["request"], request, key)
                return str(row["id"]), False
        if not checked:
            raise KeyFreed(key)
        if schedule_id is None:  # a schedule's creator was held to the rule when it was made
            require_scope(request.kind, submitter)
        unfinished = conn.execute("SELECT unfinished FROM job_counts WHERE id = 1")
        if unfinished.fetchone()[0] >= self.max_queued:
            raise Busy(
                "queue_full",
                f"the kit already holds {self.max_queued} unfinished jobs",
                "wait for some to finish, or cancel queued ones",
            )
        job_id, now = job_id or new_id(), self.clock()
        res = request.resources
        conn.execute(
            "INSERT INTO jobs (id, kind, request, priority, threads, memory_mb, gpu, idempotency_key,"
            " state, max_retries, not_before, queued_at, schedule_id, created_at, updated_at,"
            " submitted_by, submitter_scope, pick_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                request.kind,
                request.model_dump_json(),
                request.priority,
                res.threads,
                res.memory_mb,
                res.gpu,
                key,
                request.max_retries,
                request.not_before or 0.0,
                now,
                schedule_id,
                now,
                now,
                submitter.token_id,
                submitter.scope,
                now - request.priority * self.aging_s,
            ),
        )
        return job_id, True

    def taken(self, key: str | None) -> bool:
        """True when a job already holds this idempotency key."""
        return key is not None and bool(self.db.query("SELECT 1 FROM jobs WHERE idempotency_key = ?", (key,)))

    def known(self, job_ids: Collection[str], chunk: int = 500) -> set[str]:
        """Which of these jobs have a row, looked up by id (never a scan of the whole queue)."""
        ids, found = list(job_ids), set()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            sql = f"SELECT id FROM jobs WHERE id IN ({', '.join('?' * len(part))})"  # noqa: S608 - placeholders only
            found |= {str(row["id"]) for row in self.db.query(sql, tuple(part))}
        return found

    def submitter(self, row: sqlite3.Row) -> Submitter:
        return Submitter(row["submitted_by"], row["submitter_scope"])

    def get(self, job_id: str) -> JobInfo:
        return to_info(self.row(job_id))

    def row(self, job_id: str) -> sqlite3.Row:
        rows = self.db.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(
                "job_not_found",
                f"no job with id {job_id!r} on this kit",
                "`kitfleet jobs list KIT` shows its jobs; collected and expired jobs are gone",
            )
        return rows[0]

    def find(
        self,
        states: Sequence[str] = (),
        kind: str | None = None,
        schedule_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobInfo]:
        where, args = ["1 = 1"], []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += list(states)
        for column, value in (("kind", kind), ("schedule_id", schedule_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"  # noqa: S608 - only fixed column names are formatted in
        return [to_info(row) for row in self.db.query(sql, (*args, limit, offset))]

    def candidates(self, now: float, aging_s: float | None = None, limit: int = 1000) -> list[sqlite3.Row]:
        """Queued jobs past their not_before, by effective priority (priority + waited / aging_s).

        With the queue's own aging the order is read from the stored keys' index; another
        aging (a test, or a question asked before the keys are made again) sorts the rows.
        """
        if aging_s is None or aging_s == self.aging_s:
            return self.db.query(
                "SELECT * FROM jobs INDEXED BY jobs_pick WHERE state = 'queued' AND not_before <= ?"
                " ORDER BY pick_key, queued_at, rowid LIMIT ?",
                (now, limit),
            )
        return self.db.query(
            "SELECT * FROM jobs WHERE state = 'queued' AND not_before <= ?"
            " ORDER BY priority + (? - queued_at) / ? DESC, queued_at, rowid LIMIT ?",
            (now, now, aging_s, limit),
        )

    def in_pick_order(self, now: float, page: int = 16) -> Iterator[sqlite3.Row]:
        """Queued jobs past their not_before, in pick order, read a page at a time as the caller
        goes on (admission mostly stops after a few), each page continuing from the last key."""
        after: tuple[float, float, int] = (float("-inf"), float("-inf"), -1)
        while True:
            rows = self.db.query(
                "SELECT rowid AS n, * FROM jobs INDEXED BY jobs_pick"
                " WHERE state = 'queued' AND not_before <= ? AND (pick_key, queued_at, rowid) > (?, ?, ?)"
                " ORDER BY pick_key, queued_at, rowid LIMIT ?",
                (now, *after, page),
            )
            yield from rows
            if len(rows) < page:
                return
            last = rows[-1]
            after = (last["pick_key"], last["queued_at"], last["n"])

    def next_due(self, now: float) -> float | None:
        """When the first queued job held back by its not_before (a retry's back-off) comes due."""
        row = self.db.query(
            "SELECT min(not_before) FROM jobs INDEXED BY jobs_not_before"
            " WHERE state = 'queued' AND not_before > ?",
            (now,),
        )
        return None if row[0][0] is None else float(row[0][0])

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is running (the runner stops it)."""
        with self.db.transaction() as conn:
            state = _state(conn, job_id)
            if state in FINISHED_STATES:
                raise _finished(job_id, state, "cancel")
            if state == "running":
                return False
            now = self.clock()
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ?,"
                " error = 'cancelled before it started' WHERE id = ?",
                (now, now, job_id),
            )
            return True

    def delete(self, job_id: str) -> None:
        """Forget a finished job (its files are the caller's to remove)."""
        with self.db.transaction() as conn:
            state = _state(conn, job_id)
            if state not in FINISHED_STATES:
                raise Conflict(
                    "job_not_finished",
                    f"job {job_id} is {state}",
                    f"cancel it first: `kitfleet jobs cancel KIT {job_id}`",
                )
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def finished_before(self, when: float) -> list[str]:
        rows = self.db.query(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled',"
            " 'interrupted') AND finished_at < ?",
            (when,),
        )
        return [str(row["id"]) for row in rows]

    def finished_oldest_first(self) -> list[str]:
        rows = self.db.query(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled',"
            " 'interrupted') ORDER BY finished_at"
        )
        return [str(row["id"]) for row in rows]


def _state(conn: sqlite3.Connection, job_id: str) -> str:
    row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(
            "job_not_found",
            f"no job with id {job_id!r} on this kit",
            "`kitfleet jobs list KIT` shows its jobs",
        )
    return str(row["state"])


def _finished(job_id: str, state: str, action: str) -> Conflict:
    return Conflict(
        "job_finished",
        f"job {job_id} already finished ({state}); cannot {action} it",
        "collect its results with `kitfleet jobs results KIT JOB --out DIR` (--forget then deletes it)",
    )


def _same_or_conflict(stored: str, request: JobRequest, key: str) -> None:
    if json.loads(stored) != json.loads(request.model_dump_json()):
        raise Conflict(
            "idempotency_key_reused",
            f"idempotency key {key!r} was used for a different job",
            "use a new key for a new job, or resend exactly the same request",
        )


def to_info(row: sqlite3.Row, waiting: str | None = None) -> JobInfo:
    return JobInfo(
        job_id=row["id"],
        kind=row["kind"],
        state=row["state"],
        request=JobRequest.model_validate_json(row["request"]),
        label=json.loads(row["request"]).get("label", ""),
        attempts=row["attempts"],
        progress=JobProgress(done=row["progress_done"], total=row["progress_total"]),
        waiting=waiting,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        schedule_id=row["schedule_id"],
    )
