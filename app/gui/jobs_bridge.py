"""Job work for the window (queue, submit, cancel, logs, results, schedules), run on the bridge's loop.

As `ModelsBridge`: every method is called on the GUI thread and only submits a coroutine;
the coroutine runs on the loop thread and answers with a signal carrying plain data. Packing
a local folder for upload and writing downloaded files go through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from PySide6.QtCore import QObject, Signal, SignalInstance

from agent.api.schemas import (
    DatasetInfo,
    JobInfo,
    JobRequest,
    ModelInfo,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
)
from app.fleet.client import KitClient
from app.fleet.errors import Error

if TYPE_CHECKING:
    from app.gui.bridge import FleetBridge

__all__ = [
    "IMAGE_SUFFIXES",
    "JobChoices",
    "JobFilesError",
    "JobsBridge",
    "JobsSnapshot",
    "SavedResults",
    "Submission",
    "Upload",
    "tar_images",
]

T = TypeVar("T")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})  # what the kit's jobs read
_CHUNK = 1 << 20
_JOBS_SHOWN = 200


@dataclass(frozen=True)
class JobsSnapshot:
    """One kit's queue (newest first) and schedules, read together."""

    jobs: tuple[JobInfo, ...]
    schedules: tuple[ScheduleInfo, ...]


@dataclass(frozen=True)
class JobChoices:
    """What the New Job dialog offers for a kit: its deployed models and uploaded datasets."""

    models: tuple[ModelInfo, ...]
    datasets: tuple[DatasetInfo, ...]


@dataclass(frozen=True)
class Upload:
    """A folder on this laptop, sent as dataset `name` before the job that reads it."""

    folder: Path
    name: str


@dataclass(frozen=True)
class Submission:
    device_id: str
    request: JobRequest | ScheduleRequest  # a schedule queues its job at each cron time
    upload: Upload | None = None


@dataclass(frozen=True)
class SavedResults:
    job_id: str
    folder: Path
    files: tuple[Path, ...]


class JobsBridge(QObject):
    jobs_loaded = Signal(str, object)  # (device ID, JobsSnapshot)
    jobs_unavailable = Signal(str, str)  # (device ID, why the queue could not be read)
    choices_loaded = Signal(str, object)  # (device ID, JobChoices)
    submitted = Signal(str, object)  # (device ID, JobInfo or ScheduleInfo)
    logs_read = Signal(str, object)  # (device ID, JobLogs)
    results_saved = Signal(str, object)  # (device ID, SavedResults)
    changed = Signal(str, str)  # (device ID, what was done, for the status bar)

    def __init__(self, host: FleetBridge) -> None:
        super().__init__(host)
        self._host = host

    @property
    def failed(self) -> SignalInstance:
        """(operation, message): job work fails through the host bridge's signal."""
        return self._host.failed

    # called on the GUI thread ---------------------------------------------------------

    def load_jobs(self, device_id: str) -> None:
        self._host.submit("jobs", self._async_load(device_id))

    def load_choices(self, device_id: str) -> None:
        self._host.submit("job choices", self._async_choices(device_id))

    def submit(self, submission: Submission) -> None:
        self._host.submit("submit job", self._async_submit(submission))

    def cancel(self, device_id: str, job_id: str) -> None:
        self._change("cancel job", device_id, lambda c: c.cancel_job(job_id), "job cancelled")

    def delete(self, device_id: str, job_id: str) -> None:
        self._change("delete job", device_id, lambda c: c.delete_job(job_id),
                     "job collected: its log and results are deleted on the kit")

    def set_schedule_enabled(self, device_id: str, schedule_id: str, enabled: bool) -> None:
        update = ScheduleUpdate(enabled=enabled)
        self._change("schedule", device_id, lambda c: c.update_schedule(schedule_id, update),
                     "schedule resumed" if enabled else "schedule paused")

    def delete_schedule(self, device_id: str, schedule_id: str) -> None:
        self._change("schedule", device_id, lambda c: c.delete_schedule(schedule_id),
                     "schedule deleted; the jobs it queued stay")

    def read_logs(self, device_id: str, job_id: str, offset: int) -> None:
        self._host.submit("job logs", self._async_logs(device_id, job_id, offset))

    def save_results(self, device_id: str, job_id: str, folder: Path) -> None:
        self._host.submit("save results", self._async_save(device_id, job_id, folder))

    def _change(self, operation: str, device_id: str, call: Callable[[KitClient], Awaitable[object]],
                done: str) -> None:
        self._host.submit(operation, self._async_change(device_id, call, done))

    # on the loop thread -----------------------------------------------------------------

    async def _on_kit(self, device_id: str, call: Callable[[KitClient], Awaitable[T]]) -> T:
        fleet = self._host.fleet
        return await fleet.async_call(fleet.inventory.get(device_id), call)

    async def _async_load(self, device_id: str) -> None:
        async def read(client: KitClient) -> JobsSnapshot:
            jobs = await client.jobs(limit=_JOBS_SHOWN)
            return JobsSnapshot(tuple(jobs), tuple(await client.schedules()))

        try:
            snapshot = await self._on_kit(device_id, read)
        except Error as exc:  # polled: the tab says why, no window each time
            self.jobs_unavailable.emit(device_id, str(exc))
            return
        self.jobs_loaded.emit(device_id, snapshot)

    async def _async_choices(self, device_id: str) -> None:
        async def read(client: KitClient) -> JobChoices:
            models = await client.models()
            return JobChoices(tuple(models), tuple(await client.datasets()))

        self.choices_loaded.emit(device_id, await self._on_kit(device_id, read))

    async def _async_submit(self, submission: Submission) -> None:
        async def send(client: KitClient) -> JobInfo | ScheduleInfo:
            if submission.upload is not None:
                await _upload(client, submission.upload)
            if isinstance(submission.request, ScheduleRequest):
                return await client.create_schedule(submission.request)
            return (await client.submit_job(submission.request))[0]

        info = await self._on_kit(submission.device_id, send)
        self.submitted.emit(submission.device_id, info)
        await self._async_load(submission.device_id)

    async def _async_change(self, device_id: str, call: Callable[[KitClient], Awaitable[object]],
                            done: str) -> None:
        try:
            await self._on_kit(device_id, call)
        finally:  # refused or not: show what the kit holds now
            await self._async_load(device_id)
        self.changed.emit(device_id, done)

    async def _async_logs(self, device_id: str, job_id: str, offset: int) -> None:
        logs = await self._on_kit(device_id, lambda c: c.job_logs(job_id, offset))
        self.logs_read.emit(device_id, logs)

    async def _async_save(self, device_id: str, job_id: str, folder: Path) -> None:
        async def fetch(client: KitClient) -> tuple[Path, ...]:
            results = await client.job_results(job_id)
            if not results.files:
                raise JobFilesError(f"the job ({results.state}) left no result files to save")
            await asyncio.to_thread(_make_folder, folder)
            for entry in results.files:
                await client.download_result(job_id, entry.name, folder / entry.name)
            return tuple(folder / entry.name for entry in results.files)

        files = await self._on_kit(device_id, fetch)
        self.results_saved.emit(device_id, SavedResults(job_id, folder, files))


class JobFilesError(Error):
    pass


def tar_images(folder: Path) -> IO[bytes]:
    """The images under `folder` (sub-folders kept, for labelled sets) as a tar in a temp file."""
    try:
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise JobFilesError(f"cannot read {folder}: {exc.strerror or exc}") from exc
    if not images:
        raise JobFilesError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        with tarfile.open(fileobj=spool, mode="w", dereference=True) as tar:  # links refused by the kit
            for path in images:
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    except OSError as exc:
        spool.close()
        raise JobFilesError(f"cannot pack {folder}: {exc.strerror or exc}") from exc
    spool.seek(0)
    return spool


async def _upload(client: KitClient, upload: Upload) -> DatasetInfo:
    spool = await asyncio.to_thread(tar_images, upload.folder)
    try:
        return await client.upload_dataset(upload.name, _chunks(spool))
    finally:
        spool.close()


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(spool.read, _CHUNK):
        yield chunk


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobFilesError(f"cannot create {folder}: {exc.strerror or exc}") from exc
