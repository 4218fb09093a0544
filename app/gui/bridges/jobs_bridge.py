"""Job work for the window (queue, submit, cancel, logs, results, schedules), run on the bridge's loop.

As `ModelsBridge`: every method is called on the GUI thread and only submits a coroutine;
the coroutine runs on the loop thread and answers with a signal carrying plain data. Reading
a local folder, sending it, submitting and saving results are the app core's (`app.fleet`),
as the CLI's are: the same folder is sent once per kit, a submission carries an
idempotency key, and results land as `kitfleet jobs results --out` puts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal

from agent.wire import (
    DatasetInfo,
    JobInfo,
    JobRequest,
    ModelInfo,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
)
from app.fleet.client import KitClient
from app.fleet.datasets import DatasetError, LocalDataset, scan
from app.fleet.errors import Error
from app.fleet.jobs import SubmitProgress, async_submit
from app.fleet.known_models import KnownModels
from app.fleet.results import async_collect
from app.gui.bridges.base import SubBridge

__all__ = ["JobChoices", "JobsBridge", "JobsSnapshot", "Submission"]

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
class Submission:
    device_id: str
    request: JobRequest | ScheduleRequest  # a schedule queues its job at each cron time
    upload: LocalDataset | None = None  # a folder here, sent first unless the kit has it already
    also: tuple[str, ...] = ()  # more kits the same job goes to (a tag's, or every adopted kit)

    @property
    def device_ids(self) -> list[str]:
        return list(dict.fromkeys((self.device_id, *self.also)))


class JobsBridge(SubBridge):
    jobs_loaded = Signal(str, object)  # (device ID, JobsSnapshot)
    jobs_unavailable = Signal(str, str)  # (device ID, why the queue could not be read)
    choices_loaded = Signal(str, object)  # (device ID, JobChoices)
    folder_read = Signal(object, object)  # (folder, LocalDataset, or why it cannot be sent)
    submit_progress = Signal(str, object)  # (device ID, SubmitProgress): uploading, retrying
    submitted = Signal(str, object)  # (device ID, JobInfo or ScheduleInfo)
    submitted_all = Signal(object)  # list[SubmitOutcome]: every kit of a submission answered
    logs_read = Signal(str, object)  # (device ID, JobLogs)
    results_saved = Signal(str, object)  # (device ID, app.fleet.results.Collected)
    changed = Signal(str, str)  # (device ID, what was done, for the status bar)

    # called on the GUI thread ---------------------------------------------------------

    def load_jobs(self, device_id: str) -> None:
        self._submit("jobs", self._async_load(device_id))

    def load_choices(self, device_id: str) -> None:
        self._submit("job choices", self._async_choices(device_id))

    def read_folder(self, folder: Path) -> None:
        self._submit("read folder", self._async_read_folder(folder))

    def submit(self, submission: Submission) -> None:
        self._submit("submit job", self._async_submit(submission))

    def cancel(self, device_id: str, job_id: str) -> None:
        self._change("cancel job", device_id, lambda c: c.cancel_job(job_id), "job cancelled")

    def delete(self, device_id: str, job_id: str) -> None:
        self._change(
            "delete job",
            device_id,
            lambda c: c.delete_job(job_id),
            "job collected: its log and results are deleted on the kit",
        )

    def set_schedule_enabled(self, device_id: str, schedule_id: str, enabled: bool) -> None:
        update = ScheduleUpdate(enabled=enabled)
        self._change(
            "schedule",
            device_id,
            lambda c: c.update_schedule(schedule_id, update),
            "schedule resumed" if enabled else "schedule paused",
        )

    def delete_schedule(self, device_id: str, schedule_id: str) -> None:
        self._change(
            "schedule",
            device_id,
            lambda c: c.delete_schedule(schedule_id),
            "schedule deleted; the jobs it queued stay",
        )

    def activate_model(self, device_id: str, name: str, version: str) -> None:
        """Serve a version a job made (a fine-tune's), as the Models tab's Activate does."""

        async def activate(c: KitClient) -> None:
            KnownModels(self._host.ops.snapshots).confirmed(device_id, await c.activate(name, version))

        self._change("activate", device_id, activate, f"{name} {version} is now serving")

    def read_logs(self, device_id: str, job_id: str, offset: int) -> None:
        self._submit("job logs", self._async_logs(device_id, job_id, offset))

    def save_results(self, device_id: str, job_id: str, folder: Path) -> None:
        self._submit("save results", self._async_save(device_id, job_id, folder))

    def _change(
        self, operation: str, device_id: str, call: Callable[[KitClient], Awaitable[object]], done: str
    ) -> None:
        self._submit(operation, self._async_change(device_id, call, done))

    # on the loop thread -----------------------------------------------------------------

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

    async def _async_read_folder(self, folder: Path) -> None:
        try:
            dataset = await asyncio.to_thread(scan, folder)
        except DatasetError as exc:  # told beside the folder in the dialog
            self.folder_read.emit(folder, str(exc))
            return
        self.folder_read.emit(folder, dataset)

    async def _async_submit(self, submission: Submission) -> None:
        device_id, upload = submission.device_id, submission.upload
        if upload is not None:
            await _unchanged(upload)
        kits = [self._kit(d) for d in submission.device_ids]
        outcomes = await async_submit(
            self._host.fleet, kits, submission.request, upload, self._reporter(device_id)
        )
        for outcome in outcomes:
            if (info := outcome.job or outcome.schedule) is not None:
                self.submitted.emit(outcome.kit.device_id, info)
        self.submitted_all.emit(outcomes)  # who took it and who did not: the dialog tells
        if missed := [o.message for o in outcomes if not (o.job or o.schedule)]:
            self.failed.emit("submit job", "; ".join(missed))  # the status bar's line too
        await self._async_load(device_id)

    def _reporter(self, device_id: str) -> Callable[[SubmitProgress], None]:
        """Progress for the dialog: a signal for each whole percent, not for each chunk."""
        last: tuple[str, int] | None = None

        def report(progress: SubmitProgress) -> None:
            nonlocal last
            step = (progress.stage, 100 * progress.done // progress.total if progress.total else 0)
            if step != last:
                last = step
                self.submit_progress.emit(device_id, progress)

        return report

    async def _async_change(
        self, device_id: str, call: Callable[[KitClient], Awaitable[object]], done: str
    ) -> None:
        try:
            await self._on_kit(device_id, call)
        finally:  # refused or not: show what the kit holds now
            await self._async_load(device_id)
        self.changed.emit(device_id, done)

    async def _async_logs(self, device_id: str, job_id: str, offset: int) -> None:
        logs = await self._on_kit(device_id, lambda c: c.job_logs(job_id, offset))
        self.logs_read.emit(device_id, logs)

    async def _async_save(self, device_id: str, job_id: str, folder: Path) -> None:
        collected = await async_collect(self._host.fleet, self._kit(device_id), job_id, folder)
        self.results_saved.emit(device_id, collected)


async def _unchanged(upload: LocalDataset) -> None:
    """The folder still holds the files it held when chosen, which its name on the kit stands for."""
    if (await asyncio.to_thread(scan, upload.folder)).name != upload.name:
        raise DatasetError(
            f"{upload.folder} changed since it was chosen; choose it again to send its images as they are now"
        )
