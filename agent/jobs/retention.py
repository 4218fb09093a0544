"""How long finished jobs stay: until collected, `retention_days` after they finish, or
until all jobs' files pass `max_total_bytes`, whichever comes first (oldest go first).

Unfinished jobs are never expired. Rows go before their folders, so a crash between
the two leaves an orphan folder, which the next sweep removes.
"""

from __future__ import annotations

import logging

from agent.jobs.files import JobFiles
from agent.jobs.queue import JobQueue

log = logging.getLogger(__name__)
DAY_S = 86400.0


def expires_at(finished_at: float | None, retention_days: float) -> float | None:
    return None if finished_at is None else finished_at + retention_days * DAY_S


def sweep(queue: JobQueue, files: JobFiles, retention_days: float, max_total_bytes: int) -> list[str]:
    """Delete what the policy says has expired; returns the job ids removed."""
    removed = queue.finished_before(queue.clock() - retention_days * DAY_S)
    for job_id in removed:
        _forget(queue, files, job_id)
    removed += _over_budget(queue, files, max_total_bytes)
    folders = set(files.job_ids())  # the jobs that ran: a long queue has no folders to look up
    for orphan in folders - queue.known(folders):
        files.remove(orphan)
    if removed:
        log.info("expired %d finished job(s) and their files", len(removed))
    return removed


def _over_budget(queue: JobQueue, files: JobFiles, max_total_bytes: int) -> list[str]:
    sizes = {job_id: files.size(job_id) for job_id in files.job_ids()}
    used = sum(sizes.values())
    removed = []
    for job_id in queue.finished_oldest_first():
        if used <= max_total_bytes:
            break
        used -= sizes.get(job_id, 0)
        _forget(queue, files, job_id)
        removed.append(job_id)
    return removed


def _forget(queue: JobQueue, files: JobFiles, job_id: str) -> None:
    queue.delete(job_id)
    files.remove(job_id)
