"""The loop that starts, watches and ends jobs, fires schedules and expires old results.

One thread owns every state change of running jobs; the API thread only cancels
through `cancel()`, under the same lock. Each pass: end finished workers, kill
those past their deadline, renew leases (with progress), fire due schedules,
start what admission allows, and now and then sweep expired results.

Passes are driven by events: a submit, a cancel, a schedule change and a worker's exit
wake the loop. Only while jobs run (deadlines, progress, leases) or a queued job waits
on its window or gates does it also pass every `tick_s`; otherwise it sleeps until the
next back-off, schedule or sweep comes due, so an idle kit with a long queue stays idle.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.db import Database
from agent.errors import Conflict, Error, Forbidden, Refusal
from agent.jobs.admission import Capacity, Gatekeeper, admissible, total
from agent.jobs.credentials import SourceSecrets
from agent.jobs.files import JobFiles
from agent.jobs.layout import PERMANENT_EXIT
from agent.jobs.leases import Ending, Leases
from agent.jobs.prepare import Preparer
from agent.jobs.process import WorkerProcess
from agent.jobs.queue import JobQueue, new_id
from agent.jobs.retention import sweep
from agent.jobs.schedules import Schedules
from agent.jobs.spares import Spares
from agent.jobs.submitter import may_start
from agent.wire import JobInfo, JobRequest, Resources

log = logging.getLogger(__name__)
# After a worker succeeds, a kind may act in the agent (quantize installs its model).
Finisher = Callable[[str, Path, dict[str, Any]], dict[str, Any]]
DISK_FULL = "the kit's disk is full"
_FULL_BELOW = 1 << 20  # free bytes under which a failed job is said to have met a full disk
_FULL_WORDS = ("No space left on device", "database or disk is full", "Errno 28")
_STOP_GRACE_S = 5.0  # a stopped stream's time to write its summary before it is killed


@dataclass
class RunnerConfig:
    max_running: int = 4
    aging_s: float = 600.0
    lease_s: float = 30.0
    retention_days: float = 7.0
    max_total_bytes: int = 2 << 30
    tick_s: float = 1.0  # pace while jobs run; submissions and worker exits wake the loop at once
    sweep_every_s: float = 60.0
    spare_worker: bool = True  # keep a worker started ahead once jobs have run (spares.py)


class JobRunner:
    def __init__(
        self,
        queue: JobQueue,
        files: JobFiles,
        preparer: Preparer,
        schedules: Schedules,
        capacity: Capacity,
        config: RunnerConfig,
        gatekeeper: Gatekeeper | None = None,
        finishers: dict[str, Finisher] | None = None,
        secrets: SourceSecrets | None = None,
    ) -> None:
        self.queue, self.files, self.preparer, self.schedules = queue, files, preparer, schedules
        self.capacity, self.config = capacity, config
        self.gatekeeper = gatekeeper or Gatekeeper()
        self.finishers = finishers or {}
        self.secrets = secrets
        self.leases = Leases(queue, owner=new_id(), lease_s=config.lease_s)
        self.running: dict[str, WorkerProcess] = {}
        self.spares = Spares(files.root, config.spare_worker)
        self._lock = threading.RLock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = self._swept = 0.0
        self._polling = False  # a queued job waits on its window or gates: look again each tick
        self._changed = True  # an event since the last admission pass (a submit, an ending, ...)
        self._due: float | None = None  # when the first job held back by its back-off comes due
        self._finished: dict[str, dict[str, Any]] = {}  # finisher results not yet recorded
        self._met_full_disk: set[str] = set()  # running jobs whose output said the disk was full

    # lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop; running jobs are killed and queued again without using a retry."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            for job_id, proc in list(self.running.items()):
                proc.kill("the agent is stopping")
                proc.join(5)
                self.leases.release(job_id)
                self.files.log(job_id, "stopped with the agent; queued to run again")
            self.running.clear()
            self.spares.close()

    def wake(self) -> None:
        self._changed = True
        self._wake.set()

    def recover(self) -> None:
        with self._lock:
            for job_id, ending in self.leases.recover(set(self.running), self._kept_outcome):
                self._changed = True  # re-queued: admission looks again
                log.warning("job %s left running by a previous agent: now %s", job_id, ending.state)
                self.files.log(
                    job_id,
                    f"{ending.error}; {_ending_words(ending)}"
                    if ending.error
                    else "the attempt had finished when the agent stopped; recorded as done",
                )

    def _kept_outcome(self, job_id: str) -> dict[str, Any] | None:
        """What a finished attempt kept, for recovery; None for kinds whose result the agent
        must still act on (a quantize job's model is installed here), which run again."""
        if self.queue.row(job_id)["kind"] in self.finishers:
            return None
        return self.files.outcome(job_id)

    def _loop(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            self._wake.wait(pause)
            self._wake.clear()
            pause = self.config.tick_s
            try:
                self.tick()
                pause = self._pause()
            except (Error, OSError, ValueError, sqlite3.Error) as exc:  # e.g. a full disk: keep going
                log.error("job runner pass failed: %s", exc)

    def _pause(self) -> float:
        """Seconds until something can change without an event to say so."""
        with self._lock:
            if self.running or self._polling:
                return self.config.tick_s
        now = self.queue.clock()
        waits = [self.config.sweep_every_s - (time.monotonic() - self._swept)]
        for due in (self.queue.next_due(now), self.schedules.next_run()):
            if due is not None:
                waits.append(due - now)
        return min(max(min(waits), 0.01), self.config.sweep_every_s)

    def tick(self) -> None:
        with self._lock:
            for job_id, proc in list(self.running.items()):
                if proc.finished:
                    try:
                        self._end(job_id, proc)
                    except sqlite3.Error as exc:  # a full disk: the ending is recorded on a later pass
                        log.error("job %s ended but could not be recorded yet: %s", job_id, exc)
                elif proc.timed_out():
                    proc.kill("timeout")
            self._renew()
            if self.schedules.fire_due() or self._may_admit():
                self._admit()
            if time.monotonic() - self._swept > self.config.sweep_every_s:
                self._swept = time.monotonic()
                sweep(self.queue, self.files, self.config.retention_days, self.config.max_total_bytes)
                self._forget_stale_secrets()
            # after the pass: a job waiting now starts before it
            self.spares.refill(self.held().threads, {p.kind for p in tuple(self.running.values())})

    def _forget_stale_secrets(self) -> None:
        """Camera passwords are kept only while a job or schedule may still need them."""
        if self.secrets is not None:
            self.secrets.keep_only(_LiveOwners(self.queue.db))

    # cancel -----------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobInfo:
        """Stop a job now: queued ones never start, running ones are killed. 409 once finished."""
        with self._lock:
            proc = self.running.get(job_id)
            if proc is None:
                if not self.queue.cancel_queued(job_id):  # running, but not here: recovery will end it
                    raise Conflict(
                        "job_not_cancellable",
                        f"job {job_id} is being recovered",
                        "try again in a few seconds",
                    )
                return self.queue.get(job_id)
            if self.queue.row(job_id)["kind"] == "stream":  # it writes its summary first
                proc.ask_to_stop("cancel", _STOP_GRACE_S)
            proc.kill("cancel")
            proc.join(10)
            self._end(job_id, proc)
            return self.queue.get(job_id)

    # the pass ---------------------------------------------------------------------

    def _end(self, job_id: str, proc: WorkerProcess) -> None:
        """Record how the attempt ended. Until that is committed (a full disk refuses it) the job
        stays in `running`, so the next pass tries again and no ending is lost."""
        proc.join(5)
        if proc.progress_changed:  # the last report may have come after the last renewal
            self.leases.renew({job_id: proc.progress})
        ending = self._ending(job_id, proc)
        del self.running[job_id]
        self._met_full_disk.discard(job_id)
        self.files.log(job_id, f"attempt ended: {_ending_words(ending)}")
        self.wake()

    def _ending(self, job_id: str, proc: WorkerProcess) -> Ending:
        if proc.stopped_because == "cancel":  # with a stopped stream's summary
            return self.leases.cancel(job_id, "cancelled by request while running", proc.result)
        if proc.stopped_because == "timeout":
            timeout = self.queue.get(job_id).request.timeout_s
            return self.leases.fail(job_id, f"timed out after {timeout:g} s", permanent=False)
        if proc.exit_code == 0 and proc.result is not None:
            return self._succeeded(job_id, proc.result)
        error = proc.error or self.files.worker_error(job_id) or f"the worker exited with {proc.exit_code}"
        if not error.startswith(DISK_FULL) and (job_id in self._met_full_disk or self._disk_full(error)):
            error = f"{DISK_FULL} ({error[-300:]}); free space on the kit, then run the job again"
        proc.error = error  # kept for a retry of the recording, when the space may be back
        return self.leases.fail(job_id, error, permanent=proc.exit_code == PERMANENT_EXIT)

    def _disk_full(self, error: str) -> bool:
        try:
            low = shutil.disk_usage(self.files.root).free < _FULL_BELOW
        except OSError:
            low = False
        return low or _said_disk_full(error)

    def _log(self, job_id: str, line: str) -> None:
        """A worker's log line; one saying the disk is full marks the job (the line itself may
        not find room on the disk)."""
        if _said_disk_full(line):
            self._met_full_disk.add(job_id)
        self.files.log(job_id, line)

    def _succeeded(self, job_id: str, result: dict[str, Any]) -> Ending:
        finisher = self.finishers.get(self.queue.row(job_id)["kind"])
        if finisher is not None and job_id not in self._finished:  # once, even if recorded later
            try:
                self._finished[job_id] = finisher(job_id, self.files.folder(job_id), result)
            except (Refusal, OSError, ValueError) as exc:
                return self.leases.fail(job_id, f"{getattr(exc, 'message', exc)}", permanent=True)
        ending = self.leases.finish(job_id, self._finished.get(job_id, result))
        self._finished.pop(job_id, None)
        return ending

    def _renew(self) -> None:
        due = time.monotonic() - self._renewed > self.config.lease_s / 3
        changed = {job_id: proc.progress for job_id, proc in self.running.items() if proc.progress_changed}
        if not due and not (changed and time.monotonic() - self._renewed > 0.5):
            return
        for proc in self.running.values():
            proc.progress_changed = False
        self.leases.renew(changed)
        self._renewed = time.monotonic()
        if due:
            self.recover()  # leases that ran out without an owner to renew them

    def _may_admit(self) -> bool:
        """Whether anything could start that could not at the last pass: only an event, a
        back-off coming due, or a job waiting on its window or gates can change that."""
        due = self._due is not None and self.queue.clock() >= self._due
        return self._changed or self._polling or due

    def _admit(self) -> None:
        self._changed = False  # set before the pass: an event during it makes another
        free_slots = self.config.max_running - len(self.running)
        if free_slots <= 0:
            return  # a worker's exit wakes the loop
        now = self.queue.clock()
        self._due = self.queue.next_due(now)
        held_back: list[str] = []
        queued = self.queue.in_pick_order(now)  # read as far as admission goes, a page at a time
        chosen = admissible(queued, self.capacity, self.held(), free_slots, now, self.gatekeeper, held_back)
        self._polling = bool(held_back)
        for job_id, request in chosen:
            self._start(job_id, request)

    def held(self) -> Resources:
        """What running jobs hold; safe from the API's threads while this one starts and ends
        jobs (the copy is taken whole, under the GIL: no "dict changed size" on a busy kit)."""
        return total(proc.resources for proc in tuple(self.running.values()))

    def _start(self, job_id: str, request: JobRequest) -> None:
        if not self.leases.claim(job_id):
            return
        row = self.queue.row(job_id)
        refusal = may_start(self.queue.db, request.kind, self.queue.submitter(row))
        try:
            if refusal is not None:
                raise Forbidden("insufficient_scope", refusal)
            spec = self.preparer.spec(request, resolve=False)  # the worker resolves as it connects
        except Refusal as exc:
            self.leases.fail(job_id, exc.message, permanent=True)
            self.files.log(job_id, f"cannot start: {exc.message}")
            return
        attempt = row["attempts"]
        try:
            folder = self.files.prepare(
                job_id, {**spec, "job_id": job_id, "attempt": attempt, "schedule_id": row["schedule_id"]}
            )
        except OSError:  # e.g. a full disk: back to the queue, the attempt not spent
            self.leases.release(job_id)
            self._changed = True  # tried again on the next pass
            raise
        self.files.log(job_id, f"attempt {attempt} started ({request.resources.threads} thread(s))")
        proc = WorkerProcess(
            job_id,
            folder,
            request.resources,
            request.timeout_s,
            lambda line: self._log(job_id, line),
            self.wake,
            request.kind,
        )
        try:
            self.leases.set_pid(job_id, proc.start(self.spares.take(request.kind)))
        except OSError as exc:
            self.leases.fail(job_id, f"could not start the worker: {exc}", permanent=False)
            self._changed = True  # its back-off is known at the next pass
            return
        self.running[job_id] = proc


class _LiveOwners:
    """Whether a secret's owner (`job:<id>`, `schedule:<id>`) may still need it, asked per
    stored secret (a handful) rather than by listing every unfinished job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __contains__(self, owner: object) -> bool:
        kind, _, key = str(owner).partition(":")
        if kind == "job":
            sql = "SELECT 1 FROM jobs WHERE id = ? AND state IN ('queued', 'running')"
        elif kind == "schedule":
            sql = (
                "SELECT 1 FROM schedules WHERE id = ? UNION ALL SELECT 1 FROM jobs"
                " WHERE schedule_id = ? AND state IN ('queued', 'running')"
            )
            return bool(self.db.query(sql + " LIMIT 1", (key, key)))
        else:
            return False
        return bool(self.db.query(sql, (key,)))


def _said_disk_full(line: str) -> bool:
    return any(words in line for words in _FULL_WORDS)


def _ending_words(ending: Ending) -> str:
    words = {
        "queued": "queued again",
        "done": "done",
        "failed": "failed",
        "cancelled": "cancelled",
        "interrupted": "interrupted",
    }
    suffix = f" ({ending.error})" if ending.error and ending.state in ("failed", "queued") else ""
    return words.get(ending.state, ending.state) + suffix
