"""Jobs on many kits: submit everywhere at once, watch, follow logs (their files: `results`).

Shared by the CLI and the window, so it neither prints nor touches Qt: progress and
updates go to callbacks. A kit that is away never stops the others; each kit gets its
own outcome. Every submission carries an idempotency key, so a retry after a lost answer
finds the job the first attempt made instead of queuing a second one.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.wire import (
    FINISHED_STATES,
    JOB_ID_PATTERN,
    DatasetInfo,
    JobInfo,
    JobRequest,
    JobResults,
    ScheduleInfo,
    ScheduleRequest,
)
from app.fleet.client import KitClient
from app.fleet.datasets import LocalDataset, async_ensure
from app.fleet.errors import AgentError, Error, KitUnreachable
from app.fleet.inventory import Kit
from app.fleet.service import Fleet

__all__ = [
    "PerKit",
    "SubmitOutcome",
    "SubmitProgress",
    "async_cancel",
    "async_each",
    "async_explained",
    "async_follow_logs",
    "async_job",
    "async_results",
    "async_submit",
    "async_unschedule",
    "async_watch",
    "check_job_id",
    "explain",
    "named",
    "new_key",
]

RETRIES = 3
T = TypeVar("T")
UNFINISHED = ["queued", "running"]


@dataclass(frozen=True)
class SubmitProgress:
    kit: str
    stage: str  # "uploading" | "submitting" | "retrying" | "queued" | "scheduled" | "failed"
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass(frozen=True)
class SubmitOutcome:
    kit: Kit
    ok: bool
    message: str
    key: str | None = None  # resend with this key to be sure the job runs once
    retryable: bool = False  # the kit was away: sending again later may succeed
    job: JobInfo | None = None
    created: bool = False  # False: the key had already made this job
    schedule: ScheduleInfo | None = None
    dataset: DatasetInfo | None = None


@dataclass(frozen=True)
class PerKit(Generic[T]):
    """One kit's answer, or why there is none (the kit is away, or refused)."""

    kit: Kit
    value: T | None
    error: str = ""


SubmitCallback = Callable[[SubmitProgress], None]


def new_key() -> str:
    return "kf-" + secrets.token_hex(12)


def check_job_id(job_id: str) -> str:
    if not re.fullmatch(JOB_ID_PATTERN, job_id):
        raise Error(
            f"{job_id!r} is not a job ID: job IDs are 24 hex digits, as `kitfleet jobs list` shows them"
        )
    return job_id


async def async_each(
    fleet: Fleet, kits: list[Kit], call: Callable[[KitClient], Awaitable[T]]
) -> list[PerKit[T]]:
    """The same call on every kit at once; a kit that is away or refuses gets its reason."""

    async def one(kit: Kit) -> PerKit[T]:
        try:
            return PerKit(kit, await async_explained(fleet, kit, call))
        except Error as exc:
            return PerKit(kit, None, named(kit, exc))

    return list(await asyncio.gather(*(one(kit) for kit in kits)))


# --- submit ------------------------------------------------------------------------------


async def async_submit(
    fleet: Fleet,
    kits: list[Kit],
    job: JobRequest | ScheduleRequest,
    upload: LocalDataset | None = None,
    progress: SubmitCallback | None = None,
) -> list[SubmitOutcome]:
    """Queue the job (or create the schedule) on every kit concurrently, uploading `upload` first.

    A job without an idempotency key gets one, the same for every kit and every retry.
    A schedule is created once per kit and not retried: it has no key to make a retry safe.
    """
    if isinstance(job, JobRequest) and job.idempotency_key is None:
        job = job.model_copy(update={"idempotency_key": new_key()})
    report = progress or (lambda _: None)
    return list(await asyncio.gather(*(_submit_one(fleet, kit, job, upload, report) for kit in kits)))


async def _submit_one(
    fleet: Fleet,
    kit: Kit,
    job: JobRequest | ScheduleRequest,
    upload: LocalDataset | None,
    report: SubmitCallback,
) -> SubmitOutcome:
    key = job.idempotency_key if isinstance(job, JobRequest) else None
    attempts = RETRIES if key else 1
    for attempt in range(1, attempts + 1):
        try:
            outcome = await fleet.async_call(kit, lambda c: _send(c, kit, job, upload, report))
        except KitUnreachable as exc:
            if attempt < attempts:
                report(SubmitProgress(kit.name, "retrying", message=str(exc)))
                await asyncio.sleep(2.0 ** (attempt - 1))
                continue
            said = "nothing was queued there" if key else "no schedule was made there"
            return _failed(kit, f"{exc}; {said}", key, report, retryable=True)
        except AgentError as exc:
            return _failed(kit, str(explain(kit, exc)), key, report)
        except Error as exc:
            return _failed(kit, named(kit, exc), key, report)
        report(SubmitProgress(kit.name, "scheduled" if outcome.schedule else "queued"))
        return outcome
    raise AssertionError("unreachable")


def _failed(
    kit: Kit, message: str, key: str | None, report: SubmitCallback, retryable: bool = False
) -> SubmitOutcome:
    report(SubmitProgress(kit.name, "failed", message=message))
    return SubmitOutcome(kit, False, message, key, retryable)


async def _send(
    client: KitClient,
    kit: Kit,
    job: JobRequest | ScheduleRequest,
    upload: LocalDataset | None,
    report: SubmitCallback,
) -> SubmitOutcome:
    dataset = await _ensure_dataset(client, upload, report) if upload else None
    report(SubmitProgress(kit.name, "submitting"))
    if isinstance(job, ScheduleRequest):
        schedule = await client.create_schedule(job)
        return SubmitOutcome(
            kit, True, f"schedule {schedule.schedule_id} created", None, schedule=schedule, dataset=dataset
        )
    info, created = await client.submit_job(job)
    said = "queued" if created else "already queued by an earlier attempt"
    return SubmitOutcome(
        kit,
        True,
        f"job {info.job_id} {said}",
        job.idempotency_key,
        job=info,
        created=created,
        dataset=dataset,
    )


async def _ensure_dataset(client: KitClient, upload: LocalDataset, report: SubmitCallback) -> DatasetInfo:
    """The dataset on the kit, uploaded (resumably) unless an earlier send already put it there."""

    def sent(n: int) -> None:
        report(SubmitProgress(client.name, "uploading", n, upload.size))

    return await async_ensure(client, upload, sent)


# --- watch and logs ----------------------------------------------------------------------

JobCallback = Callable[[Kit, JobInfo], None]
RetryCallback = Callable[[Kit, str, float], None]  # the kit, why it did not answer, seconds to wait
_RETRY_MAX_S = 15.0


async def async_watch(
    fleet: Fleet,
    kit: Kit,
    job_ids: list[str] | None,
    on_update: JobCallback,
    interval: float = 0.5,
    give_up_s: float = 600.0,
    on_retry: RetryCallback | None = None,
) -> list[JobInfo]:
    """Poll until every job has finished, calling `on_update` when a job's state or progress moves.

    `job_ids` None watches the jobs unfinished on the kit now. A kit that stops answering (a
    flaky link, a restart) is asked again with back-off, each wait told to `on_retry`, until it
    has been silent for `give_up_s`; its jobs keep running meanwhile, so the watch ends with
    their real end state, not with the outage.
    """
    latest: dict[str, JobInfo] = {}
    wanted: list[list[str]] = [job_ids] if job_ids is not None else []
    silent_since: float | None = None

    async def watch(client: KitClient) -> list[JobInfo]:
        nonlocal silent_since
        if not wanted:
            wanted.append([j.job_id for j in await client.jobs(UNFINISHED, limit=1000)])
        ids = wanted[0]
        while _pending(ids, latest):
            await _poll(client, kit, _pending(ids, latest), latest, on_update)
            silent_since = None
            if _pending(ids, latest):
                await asyncio.sleep(interval)
        return [latest[i] for i in ids]

    delay = 0.0
    while True:
        try:  # the inventory's address: a kit found elsewhere over mDNS is followed there
            return await async_explained(fleet, fleet.inventory.get(kit.device_id), watch)
        except KitUnreachable as exc:
            now = time.monotonic()
            delay = 1.0 if silent_since is None else min(2 * delay, _RETRY_MAX_S)
            silent_since = now if silent_since is None else silent_since
            if now - silent_since >= give_up_s:
                raise
            if on_retry is not None:
                on_retry(kit, str(exc), delay)
            await asyncio.sleep(delay)


def _pending(ids: list[str], latest: dict[str, JobInfo]) -> list[str]:
    return [i for i in ids if i not in latest or latest[i].state not in FINISHED_STATES]


async def _poll(
    client: KitClient, kit: Kit, pending: list[str], latest: dict[str, JobInfo], on_update: JobCallback
) -> None:
    """One request for every unfinished job; one more for each that has just finished."""
    unfinished = {j.job_id: j for j in await client.jobs(UNFINISHED, limit=1000)}
    for job_id in pending:
        info = unfinished.get(job_id) or await client.job(job_id)
        before = latest.get(job_id)
        latest[job_id] = info
        if before is None or (before.state, before.progress, before.waiting) != (
            info.state,
            info.progress,
            info.waiting,
        ):
            on_update(kit, info)


async def async_follow_logs(
    fleet: Fleet,
    kit: Kit,
    job_id: str,
    on_text: Callable[[str], None],
    follow: bool = False,
    interval: float = 0.5,
) -> bool:
    """Send the job's log to `on_text`; with `follow`, until the job finishes. True when it has."""

    async def read(client: KitClient) -> bool:
        offset = 0
        while True:
            page = await client.job_logs(job_id, offset)
            if page.text:
                on_text(page.text)
            caught_up, offset = page.next_offset == offset, page.next_offset
            if caught_up and (page.finished or not follow):
                return page.finished
            if caught_up:
                await asyncio.sleep(interval)

    return await async_explained(fleet, kit, read)


async def async_cancel(fleet: Fleet, kit: Kit, job_id: str) -> JobInfo:
    return await async_explained(fleet, kit, lambda c: c.cancel_job(check_job_id(job_id)))


async def async_job(fleet: Fleet, kit: Kit, job_id: str) -> JobInfo:
    return await async_explained(fleet, kit, lambda c: c.job(check_job_id(job_id)))


async def async_results(fleet: Fleet, kit: Kit, job_id: str) -> JobResults:
    """The result summary and the files there are, without downloading them."""
    return await async_explained(fleet, kit, lambda c: c.job_results(check_job_id(job_id)))


async def async_unschedule(fleet: Fleet, kit: Kit, schedule_id: str) -> None:
    if not re.fullmatch(JOB_ID_PATTERN, schedule_id):
        raise Error(
            f"{schedule_id!r} is not a schedule ID: they are 24 hex digits, as "
            "`kitfleet jobs schedules` shows them"
        )
    await async_explained(fleet, kit, lambda c: c.delete_schedule(schedule_id))


# --- errors ------------------------------------------------------------------------------

_HINTS = {
    "model_not_deployed": "deploy it with `kitfleet deploy MODEL.onnx --kit {kit} --activate`; "
    "`kitfleet models list {kit}` shows what is there",
    "job_not_found": "it may have been collected or expired; `kitfleet jobs list {kit}` shows its jobs",
    "job_finished": "there is nothing to stop; `kitfleet jobs results {kit} JOB --out DIR` collects "
    "its results",
    "dataset_not_found": "send a local folder with --upload DIR instead",
    "schedule_not_found": "`kitfleet jobs schedules {kit}` lists them",
}


def explain(kit: Kit, exc: AgentError) -> AgentError:
    """The kit's refusal under its name, with a hint in app terms where the kit's speaks API."""
    hint = _HINTS.get(exc.error)
    return AgentError(
        exc.status, exc.error, f"{kit.name}: {exc.message}", hint.format(kit=kit.name) if hint else exc.hint
    )


def named(kit: Kit, text: object) -> str:
    """A message about a kit, starting with the kit's name exactly once."""
    said = str(text)
    return said if said.startswith((f"{kit.name}:", f"{kit.name} ")) else f"{kit.name}: {said}"


async def async_explained(fleet: Fleet, kit: Kit, call: Callable[[KitClient], Awaitable[T]]) -> T:
    try:
        return await fleet.async_call(kit, call)
    except AgentError as exc:
        raise explain(kit, exc) from None
