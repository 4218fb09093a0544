"""Job and schedule routes. Each handler's docstring lists its status codes.

Submitting answers 201 only after the job's row is committed; the same
idempotency key again answers 200 with the job it made the first time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse

from agent.api.auth import require
from agent.api.bodies import body_of, declared_length
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.jobs.service import Jobs
from agent.wire import (
    JOB_ID_PATTERN,
    MAX_INT64,
    NAME_PATTERN,
    RESULT_FILES,
    DatasetInfo,
    DatasetUpload,
    DatasetUploadRequest,
    JobInfo,
    JobKind,
    JobLogs,
    JobResults,
    JobState,
    JobSubmission,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
    error_responses,
)

jobs_router = APIRouter(tags=["jobs"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="job id")]
ScheduleId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="schedule id")]
DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="dataset name")]
_MEDIA = {
    "results.jsonl": "application/x-ndjson",
    "results.csv": "text/csv",
    "result.json": "application/json",
    "manifest.json": "application/json",
    "model.onnx": "application/octet-stream",
    "results.1.jsonl": "application/x-ndjson",
    "results.1.csv": "text/csv",
}


def _jobs(request: Request) -> Jobs:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return state.jobs


@jobs_router.post(
    "/v1/jobs",
    response_model=JobInfo,
    status_code=201,
    responses={
        200: {"model": JobInfo, "description": "the job this idempotency key made"},
        **error_responses(400, 401, 403, 409, 413, 422, 429),
    },
)
def submit_job(request: Request, response: Response, body: JobSubmission, caller: Operator) -> JobInfo:
    """Queue a job; `command` jobs need the admin scope. 201 queued; 200 same key again; 401; 403;
    409 key reused for another job; 422 bad kind, params, model, folder, resources; 429 queue full."""
    job, created = _jobs(request).submit(body, caller)
    response.status_code = 201 if created else 200
    return job


@jobs_router.get("/v1/jobs", response_model=list[JobInfo], responses=error_responses(401, 422))
def list_jobs(
    request: Request,
    _: Viewer,
    state: Annotated[list[JobState] | None, Query(description="repeat to match several")] = None,
    kind: JobKind | None = None,
    schedule_id: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> list[JobInfo]:
    """Jobs, newest first, filtered by state, kind or schedule. 200; 401; 422."""
    return _jobs(request).list(list(state or []), kind, schedule_id, limit, offset)


@jobs_router.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=error_responses(401, 404, 422))
def get_job(request: Request, job_id: JobId, _: Viewer) -> JobInfo:
    """One job: state, progress, attempts, why it waits, result summary, error. 200; 401; 404."""
    return _jobs(request).get(job_id)


@jobs_router.get("/v1/jobs/{job_id}/logs", response_model=JobLogs, responses=error_responses(401, 404, 422))
def job_logs(
    request: Request,
    job_id: JobId,
    _: Viewer,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64, description="byte offset; pass next_offset back")] = 0,
    limit: Annotated[int, Query(ge=1, le=1 << 20)] = 64 * 1024,
) -> JobLogs:
    """The job's log from `offset`; poll with `next_offset` until `finished`. 200; 401; 404; 422."""
    return _jobs(request).logs(job_id, offset, limit)


@jobs_router.get(
    "/v1/jobs/{job_id}/results", response_model=JobResults, responses=error_responses(401, 404, 422)
)
def job_results(request: Request, job_id: JobId, _: Viewer) -> JobResults:
    """Result summary, the files to download, and when they expire. 200; 401; 404."""
    return _jobs(request).results(job_id)


@jobs_router.get(
    "/v1/jobs/{job_id}/results/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in sorted(set(_MEDIA.values()))}},
        **error_responses(401, 404, 422),
    },
)
def job_result_file(
    request: Request,
    job_id: JobId,
    _: Viewer,
    name: Annotated[str, Path(pattern="^(" + "|".join(RESULT_FILES).replace(".", r"\.") + ")$")],
) -> FileResponse:
    """Download one result file (JSONL, CSV, JSON, or a quantized model). 200; 401; 404; 422."""
    path = _jobs(request).result_file(job_id, name)
    return FileResponse(path, media_type=_MEDIA[name], filename=f"{job_id}-{name}")


@jobs_router.post(
    "/v1/jobs/{job_id}/cancel", response_model=JobInfo, responses=error_responses(401, 403, 404, 409, 422)
)
def cancel_job(request: Request, job_id: JobId, _: Operator) -> JobInfo:
    """Cancel a queued job, or kill a running one. 200; 401; 403; 404; 409 already finished."""
    return _jobs(request).cancel(job_id)


@jobs_router.delete("/v1/jobs/{job_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 422))
def delete_job(request: Request, job_id: JobId, _: Operator) -> None:
    """Collect: forget a finished job and delete its log and results. 204; 401; 403; 404; 409 unfinished."""
    _jobs(request).delete(job_id)


# --- datasets -----------------------------------------------------------------------

_TAR = {
    "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
    "required": True,
}


@jobs_router.put(
    "/v1/datasets/{name}",
    response_model=DatasetInfo,
    status_code=201,
    openapi_extra={"requestBody": _TAR},
    responses=error_responses(401, 403, 409, 413, 422, 507),
)
async def upload_dataset(request: Request, name: DatasetName, _: Operator) -> DatasetInfo:
    """Upload a tar (optionally gzip, bzip2 or xz) of images for jobs to use as `dataset`. 201; 401;
    403; 409; 413 too large as sent (from Content-Length alone) or unpacked, or too many files;
    422 bad archive; 507 no room to unpack it; 499 in the audit log when the link drops."""
    body = body_of(request, f"dataset {name}", "nothing of it is kept: send it again")
    return await _jobs(request).datasets.upload(name, body, declared_length(request))


@jobs_router.post(
    "/v1/datasets/{name}/upload",
    response_model=DatasetUpload,
    responses=error_responses(400, 401, 403, 409, 413, 422, 507),
)
def start_dataset_upload(
    request: Request, name: DatasetName, body: DatasetUploadRequest, _: Operator
) -> DatasetUpload:
    """Start a resumable upload of a dataset archive of `size` bytes, or resume one of that size:
    send from `offset`. 200; 400 not JSON; 401; 403; 409 the dataset exists; 413 over the limit;
    507 no room."""
    return _jobs(request).dataset_uploads.start(name, body.size)


@jobs_router.patch(
    "/v1/datasets/{name}/upload",
    response_model=DatasetUpload,
    openapi_extra={"requestBody": _TAR},
    responses=error_responses(401, 403, 409, 422, 507),
)
async def append_dataset_upload(
    request: Request,
    name: DatasetName,
    _: Operator,
    upload_offset: Annotated[int, Header(ge=0, le=MAX_INT64)],
) -> DatasetUpload:
    """Append archive bytes at `Upload-Offset`, which must be where the kit stands. 200; 401; 403;
    409 another offset, more than announced, or not started; 507; 499 in the log when the link drops."""
    body = body_of(
        request,
        f"dataset {name}",
        "the bytes that arrived are kept: send the same dataset again to resume",
    )
    return await _jobs(request).dataset_uploads.append(name, upload_offset, body)


@jobs_router.post(
    "/v1/datasets/{name}/upload/commit",
    response_model=DatasetInfo,
    status_code=201,
    responses=error_responses(401, 403, 409, 413, 422, 507),
)
async def commit_dataset_upload(request: Request, name: DatasetName, _: Operator) -> DatasetInfo:
    """Unpack the complete archive as dataset `name`. 201; 401; 403; 409 bytes missing or the
    dataset exists; 413 too large or too many files unpacked; 422 bad archive; 507 no room."""
    return await _jobs(request).dataset_uploads.finish(name)


@jobs_router.get("/v1/datasets", response_model=list[DatasetInfo], responses=error_responses(401))
def list_datasets(request: Request, _: Viewer) -> list[DatasetInfo]:
    """Uploaded datasets. 200; 401."""
    return _jobs(request).datasets.all()


@jobs_router.delete("/v1/datasets/{name}", status_code=204, responses=error_responses(401, 403, 404, 422))
def delete_dataset(request: Request, name: DatasetName, _: Operator) -> None:
    """Delete an uploaded dataset. 204; 401; 403; 404."""
    _jobs(request).datasets.delete(name)


# --- schedules ----------------------------------------------------------------------


@jobs_router.post(
    "/v1/schedules",
    response_model=ScheduleInfo,
    status_code=201,
    responses=error_responses(400, 401, 403, 413, 422),
)
def create_schedule(request: Request, body: ScheduleRequest, caller: Operator) -> ScheduleInfo:
    """Queue `job` at each time `cron` names, on the kit's clock. 201; 401; 403; 422 bad cron or job."""
    return _jobs(request).create_schedule(body, caller)


@jobs_router.get("/v1/schedules", response_model=list[ScheduleInfo], responses=error_responses(401))
def list_schedules(request: Request, _: Viewer) -> list[ScheduleInfo]:
    """Every schedule with its next run. 200; 401."""
    return _jobs(request).schedules.all()


@jobs_router.get(
    "/v1/schedules/{schedule_id}", response_model=ScheduleInfo, responses=error_responses(401, 404, 422)
)
def get_schedule(request: Request, schedule_id: ScheduleId, _: Viewer) -> ScheduleInfo:
    """One schedule. 200; 401; 404."""
    return _jobs(request).schedules.get(schedule_id)


@jobs_router.patch(
    "/v1/schedules/{schedule_id}",
    response_model=ScheduleInfo,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
def update_schedule(
    request: Request, schedule_id: ScheduleId, body: ScheduleUpdate, _: Operator
) -> ScheduleInfo:
    """Change the cron, the missed-run policy, or pause/resume. 200; 401; 403; 404; 422."""
    return _jobs(request).update_schedule(schedule_id, body)


@jobs_router.delete(
    "/v1/schedules/{schedule_id}", status_code=204, responses=error_responses(401, 403, 404, 422)
)
def delete_schedule(request: Request, schedule_id: ScheduleId, _: Operator) -> None:
    """Delete a schedule; jobs it already queued stay. 204; 401; 403; 404."""
    _jobs(request).schedules.delete(schedule_id)
