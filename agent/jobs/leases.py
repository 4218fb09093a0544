"""The runner's side of the queue: claims, leases, endings and crash recovery.

A running row names its lease owner (one per agent start) and when the lease ends.
Every change is conditional on `state = 'running' AND lease_owner = me`, so a job
is never finished twice and a stale runner can never overwrite a newer attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.jobs.layout import WORKER_MODULE
from agent.jobs.queue import JobQueue

log = logging.getLogger(__name__)
BACKOFF_CAP_S = 6 * 3600.0


@dataclass(frozen=True)
class Ending:
    state: str  # the state the job went to: done/failed/queued/interrupted/cancelled
    error: str | None = None


class Leases:
    def __init__(self, queue: JobQueue, owner: str, lease_s: float) -> None:
        self.queue = queue
        self.owner = owner
        self.lease_s = lease_s

    def claim(self, job_id: str) -> bool:
        """queued → running, counting the attempt; False if someone changed it first."""
        now = self.queue.clock()
        with self.queue.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?,"
                " finished_at = NULL, updated_at = ?, lease_owner = ?, lease_expires_at = ?,"
                " worker_pid = NULL, progress_done = 0, progress_total = NULL"
                " WHERE id = ? AND state = 'queued'",
                (now, now, self.owner, now + self.lease_s, job_id),
            )
            return cur.rowcount == 1

    def set_pid(self, job_id: str, pid: int) -> None:
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET worker_pid = ? WHERE id = ? AND lease_owner = ?", (pid, job_id, self.owner)
            )

    def renew(self, progress: dict[str, tuple[int, int | None]]) -> None:
        """Extend every lease this runner holds and store progress, in one commit."""
        now = self.queue.clock()
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE state = 'running' AND lease_owner = ?",
                (now + self.lease_s, self.owner),
            )
            conn.executemany(
                "UPDATE jobs SET progress_done = ?, progress_total = ?, updated_at = ?"
                " WHERE id = ? AND lease_owner = ?",
                [(done, total, now, job_id, self.owner) for job_id, (done, total) in progress.items()],
            )

    def finish(self, job_id: str, result: dict[str, Any] | None) -> Ending:
        self._end(job_id, "done", json.dumps(result) if result is not None else None, None)
        return Ending("done")

    def cancel(self, job_id: str, reason: str, result: dict[str, Any] | None = None) -> Ending:
        self._end(job_id, "cancelled", json.dumps(result) if result is not None else None, reason)
        return Ending("cancelled", reason)

    def fail(self, job_id: str, error: str, permanent: bool) -> Ending:
        """Re-queue with exponential back-off while retries remain, else failed."""
        row = self.queue.row(job_id)
        if permanent or row["attempts"] > row["max_retries"]:
            self._end(job_id, "failed", None, error)
            return Ending("failed", error)
        backoff = json.loads(row["request"]).get("retry_backoff_s", 30.0)
        delay = min(backoff * 2 ** (row["attempts"] - 1), BACKOFF_CAP_S)
        self._requeue(job_id, self.queue.clock() + delay, f"{error} (retrying in {delay:g} s)")
        return Ending("queued", error)

    def release(self, job_id: str) -> None:
        """The agent is stopping cleanly: back to the queue, and this attempt is not counted."""
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL,"
                " lease_expires_at = NULL, worker_pid = NULL, updated_at = ?,"
                " error = 'stopped with the agent; will run again' WHERE id = ? AND lease_owner = ?"
                " AND state = 'running'",
                (self.queue.clock(), job_id, self.owner),
            )

    def recover(
        self,
        running_here: set[str],
        finished: Callable[[str], dict[str, Any] | None] = lambda job_id: None,
    ) -> list[tuple[str, Ending]]:
        """Jobs left running by an agent that died (or whose lease ran out): done when `finished`
        gives the summary the attempt kept before the agent heard of it, else re-queue or interrupt."""
        now = self.queue.clock()
        rows = self.queue.db.query(
            "SELECT id, attempts, max_retries, worker_pid, lease_owner, lease_expires_at FROM jobs"
            " WHERE state = 'running'"
        )
        orphans = [
            r
            for r in rows
            if r["id"] not in running_here
            and (r["lease_owner"] != self.owner or (r["lease_expires_at"] or 0) < now)
        ]
        return [(str(r["id"]), self._recover_one(r, finished)) for r in orphans]

    def _recover_one(self, row: sqlite3.Row, finished: Callable[[str], dict[str, Any] | None]) -> Ending:
        _kill_orphan(row["worker_pid"], str(row["id"]))
        summary = finished(str(row["id"]))
        if summary is not None:  # it had finished: running it again would do its work twice
            self._end(str(row["id"]), "done", json.dumps(summary), None, owner=row["lease_owner"])
            return Ending("done")
        reason = (
            f"attempt {row['attempts']} was cut short: the agent stopped unexpectedly "
            "(crash, kill or power loss) while it ran"
        )
        if row["attempts"] <= row["max_retries"]:
            self._requeue(str(row["id"]), self.queue.clock(), reason, owner=row["lease_owner"])
            return Ending("queued", reason)
        reason += "; no retries left"
        self._end(str(row["id"]), "interrupted", None, reason, owner=row["lease_owner"])
        return Ending("interrupted", reason)

    def _requeue(self, job_id: str, not_before: float, error: str, owner: str | None = None) -> None:
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', not_before = ?, error = ?, lease_owner = NULL,"
                " lease_expires_at = NULL, worker_pid = NULL, updated_at = ?"
                " WHERE id = ? AND state = 'running' AND lease_owner IS ?",
                (not_before, error, self.queue.clock(), job_id, owner or self.owner),
            )

    def _end(
        self, job_id: str, state: str, result: str | None, error: str | None, owner: str | None = None
    ) -> None:
        now = self.queue.clock()
        with self.queue.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?,"
                " lease_owner = NULL, lease_expires_at = NULL, worker_pid = NULL"
                " WHERE id = ? AND state = 'running' AND lease_owner IS ?",
                (state, result, error, now, now, job_id, owner or self.owner),
            )


def _works_in(pid: int, job_id: str) -> bool:
    """A spare worker (spares.py) names its job by working in the job's folder."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/cwd")) == job_id
    except OSError:
        return False


def _kill_orphan(pid: int | None, job_id: str) -> None:
    """A worker outliving its agent would run the job twice: kill it if it is still ours."""
    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except OSError:
        return  # gone (or no /proc): nothing to kill
    if WORKER_MODULE.encode() in cmdline and (
        any(job_id.encode() in arg for arg in cmdline) or _works_in(pid, job_id)
    ):
        log.warning("killing worker %d left over from a previous agent (job %s)", pid, job_id)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the worker leads its own process group
