"""The job system as the API sees it: one object built at start-up, started and stopped
with the agent (see `agent/server.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.auth.tokens import Caller
from agent.config import Settings
from agent.db import Database
from agent.errors import Invalid
from agent.jobs.admission import Capacity, waiting_reason
from agent.jobs.credentials import SourceSecrets
from agent.jobs.dataset_uploads import DatasetUploads
from agent.jobs.datasets import Datasets
from agent.jobs.field_datasets import FieldDatasets
from agent.jobs.files import JobFiles
from agent.jobs.layout import RESULTS
from agent.jobs.prepare import Preparer
from agent.jobs.queue import JobQueue, KeyFreed, new_id, to_info
from agent.jobs.retention import expires_at
from agent.jobs.runner import JobRunner, RunnerConfig
from agent.jobs.schedules import Schedules
from agent.jobs.submitter import Submitter, require_scope
from agent.jobs.unsure import UnsureBuffer
from agent.jobs.urls import mask, needs_secret
from agent.models.store import ModelStore
from agent.wire import (
    JobInfo,
    JobLogs,
    JobRequest,
    JobResults,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
)

JOBS_DIR = "jobs"
MIB = 1 << 20


class Jobs:
    def __init__(self, settings: Settings, db: Database, models: ModelStore) -> None:
        self.settings, self.models = settings, models
        self.capacity = Capacity.of_kit(settings.jobs_threads, settings.jobs_memory_mb, settings.jobs_gpus)
        self.queue = JobQueue(db, settings.jobs_max_queued, aging_s=settings.jobs_aging_s)
        self.files = JobFiles(settings.data_dir / JOBS_DIR, settings.jobs_max_log_bytes)
        self.preparer = Preparer(
            settings.data_dir,
            models,
            self.capacity,
            settings.jobs_data_roots,
            settings.jobs_allowed_commands,
            settings.jobs_max_result_bytes,
            settings.allowed_stream_hosts,
            tdp_w=settings.tdp_w,
        )
        self.secrets = SourceSecrets.in_data_dir(settings.data_dir)
        self.schedules = Schedules(self.queue)
        self.datasets = Datasets(
            settings.data_dir,
            settings.max_dataset_bytes,
            settings.disk_reserve_bytes,
            settings.max_dataset_files,
        )
        self.dataset_uploads = DatasetUploads(self.datasets)  # the same archives, resumably
        self.field = FieldDatasets(settings.data_dir, settings.disk_reserve_bytes)  # labelled one by one
        self.unsure = UnsureBuffer(settings.data_dir)  # what stream and batch-infer jobs were unsure of
        config = RunnerConfig(
            max_running=settings.jobs_max_running,
            aging_s=settings.jobs_aging_s,
            lease_s=settings.jobs_lease_s,
            retention_days=settings.jobs_retention_days,
            max_total_bytes=settings.jobs_max_total_mb * MIB,
        )
        self.runner = JobRunner(
            self.queue,
            self.files,
            self.preparer,
            self.schedules,
            self.capacity,
            config,
            finishers={"quantize": self._install_quantized, "fine-tune": self._install_fine_tuned},
            secrets=self.secrets,
        )

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    # jobs -------------------------------------------------------------------------

    def submit(self, request: JobRequest, caller: Caller) -> tuple[JobInfo, bool]:
        """(job, created). A repeated idempotency key answers the first job without the other
        checks again; who may submit the kind is checked every time, and again in the insert."""
        submitter = Submitter.of(caller)
        require_scope(request.kind, submitter)
        request, secret = _without_secret(request)
        checked = not self.queue.taken(request.idempotency_key)
        if checked:
            self.preparer.check(request, caller)
        job_id = new_id()
        with self._secret_kept(f"job:{job_id}", secret) as keep:
            try:
                job, created = self.queue.submit(request, submitter, checked, job_id)
            except KeyFreed:  # its job was deleted since we looked: a new job, so check it first
                self.preparer.check(request, caller)
                job, created = self.queue.submit(request, submitter, job_id=job_id)
            keep.append(created)
        if created:
            self.runner.wake()
        return self._with_waiting(job), created

    @contextlib.contextmanager
    def _secret_kept(self, owner: str, secret: str | None) -> Iterator[list[bool]]:
        """Store `secret` before the row that needs it is committed (the runner may start the job
        at once), and drop it again unless the block appends True (a row was made)."""
        if secret is not None:
            self.secrets.put(owner, secret)
        kept: list[bool] = []
        try:
            yield kept
        finally:
            if secret is not None and not any(kept):
                self.secrets.forget([owner])

    def get(self, job_id: str) -> JobInfo:
        return self._with_waiting(self.queue.get(job_id))

    def list(
        self, states: list[str], kind: str | None, schedule_id: str | None, limit: int, offset: int
    ) -> list[JobInfo]:
        return [self._with_waiting(job) for job in self.queue.find(states, kind, schedule_id, limit, offset)]

    def cancel(self, job_id: str) -> JobInfo:
        return self.runner.cancel(job_id)

    def delete(self, job_id: str) -> None:
        self.queue.delete(job_id)
        self.files.remove(job_id)
        self.secrets.forget([f"job:{job_id}"])

    def logs(self, job_id: str, offset: int, limit: int) -> JobLogs:
        job = self.queue.get(job_id)
        text, next_offset = self.files.read_log(job_id, offset, limit)
        return JobLogs(
            job_id=job_id,
            offset=offset,
            next_offset=next_offset,
            text=text,
            finished=job.state not in ("queued", "running"),
        )

    def results(self, job_id: str) -> JobResults:
        job = self.queue.get(job_id)
        return JobResults(
            job_id=job_id,
            state=job.state,
            result=job.result,
            files=self.files.results(job_id),
            expires_at=expires_at(job.finished_at, self.settings.jobs_retention_days),
        )

    def result_file(self, job_id: str, name: str) -> Path:
        self.queue.get(job_id)
        return self.files.result_path(job_id, name)

    def _with_waiting(self, job: JobInfo) -> JobInfo:
        warnings = self.runner.gatekeeper.unenforceable(job.request.gates)  # [] without gates
        if job.state == "queued":
            row = self.queue.row(job.job_id)
            reason = waiting_reason(row, job.request, self.queue.clock(), self.runner.gatekeeper)
            if reason is None and not self.capacity.fits(job.request.resources, self.runner.held()):
                reason = "waiting for threads/memory/GPU that running jobs hold"
            job = to_info(row, reason)
        return job.model_copy(update={"warnings": warnings}) if warnings else job

    # schedules --------------------------------------------------------------------

    def create_schedule(self, request: ScheduleRequest, caller: Caller) -> ScheduleInfo:
        job, secret = _without_secret(request.job)
        request = request.model_copy(update={"job": job})
        self.preparer.check(request.job, caller)
        schedule_id = new_id()
        with self._secret_kept(f"schedule:{schedule_id}", secret) as keep:
            schedule = self.schedules.create(request, Submitter.of(caller), schedule_id)
            keep.append(True)
        self.runner.wake()
        return schedule

    def update_schedule(self, schedule_id: str, change: ScheduleUpdate) -> ScheduleInfo:
        schedule = self.schedules.update(schedule_id, change)
        self.runner.wake()
        return schedule

    # kinds that finish in the agent -------------------------------------------------

    def _install_quantized(self, job_id: str, folder: Path, result: dict[str, Any]) -> dict[str, Any]:
        """Install the INT8 model as a new, inactive version, keeping the result file."""
        if not result.get("install"):
            return result
        from agent.wire import Manifest

        results = folder / RESULTS
        manifest = Manifest.model_validate_json((results / "manifest.json").read_text())
        copy = results / ".install-model.onnx"
        copy.write_bytes((results / "model.onnx").read_bytes())  # install() moves the file it gets
        self.models.install(manifest, copy)
        return {**result, "installed": True}

    def _install_fine_tuned(self, job_id: str, folder: Path, result: dict[str, Any]) -> dict[str, Any]:
        """Install the fine-tuned model as a new version; active only if asked and better."""
        from agent.jobs.fine_tune_install import install_fine_tuned

        return install_fine_tuned(self.models, folder, result)


def _without_secret(request: JobRequest) -> tuple[JobRequest, str | None]:
    """The request as stored and shown (a stream URL's password masked), and the real URL when
    it held one (kept in the secrets store, never in the job's row)."""
    if request.kind != "stream":
        return request, None
    source = str(request.params["source"])
    shown = mask(source)
    if shown == source:
        if needs_secret(source):
            raise Invalid(
                "masked_password",
                f"{source} holds a masked password (***), not the camera's own",
                "give the camera's real user and password in the URL",
            )
        return request, None
    return request.model_copy(update={"params": {**request.params, "source": shown}}), source
