"""Live results of `stream` jobs: Server-Sent Events, the latest annotated frame, kept snapshots.

The worker replaces `live.json` and `live.jpg` in the job's folder a few times a second
(`agent/jobs/live.py`); these routes only read them, so a viewer costs the job nothing and
a slow or vanished viewer holds nothing back. Each handler's docstring lists its status codes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import StreamingResponse

from agent.api.auth import require
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.errors import ApiError
from agent.jobs.layout import RESULTS
from agent.jobs.live import LIVE_JSON, SNAPSHOTS, read_jpeg, read_live
from agent.jobs.service import Jobs
from agent.wire import FINISHED_STATES, JOB_ID_PATTERN, JobInfo, error_responses

__all__ = ["stream_router"]

stream_router = APIRouter(tags=["stream"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="job id")]
SnapshotName = Annotated[str, Path(pattern=r"^[0-9]{9}-[0-9]{8}T[0-9]{6}\.jpg$")]
MAX_VIEWERS = 16  # live connections at once, all jobs together
POLL_S = 0.05  # how often a connection looks for new frames
STATS_EVERY_S = 1.0
_NO_CACHE = {"Cache-Control": "no-store"}


def _jobs(request: Request) -> Jobs:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return state.jobs


async def _stream_job(request: Request, job_id: str) -> tuple[Jobs, JobInfo, FilePath]:
    jobs = _jobs(request)
    job = await asyncio.to_thread(jobs.get, job_id)
    if job.kind != "stream":
        raise ApiError(
            409,
            "not_a_stream",
            f"job {job_id} is a {job.kind} job, not a stream",
            "live results come from stream jobs only",
        )
    return jobs, job, jobs.files.folder(job_id)


@stream_router.get(
    "/v1/jobs/{job_id}/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(401, 404, 409, 422, 429)},
)
async def live(request: Request, job_id: JobId, _: Viewer) -> StreamingResponse:
    """Server-Sent Events of a stream job: `frame` (one frame's results: seq, frame, t, latency_ms,
    detections or classes), `stats` each second (frames_in, processed, dropped, input_fps,
    processed_fps, latency_ms p50/p99, counts in the current interval, totals, the job's state,
    and `skipped`: frames this viewer missed), then `end` once the job finished.
    200; 401; 404; 409 not a stream job; 429 too many viewers."""
    jobs, _job, folder = await _stream_job(request, job_id)
    viewers = _viewers(request)
    if viewers[0] >= MAX_VIEWERS:
        raise ApiError(
            429,
            "too_many_viewers",
            f"{MAX_VIEWERS} live views are open on this kit",
            "close another live view and try again",
        )
    viewers[0] += 1
    return StreamingResponse(
        _events(jobs, job_id, folder, viewers),
        media_type="text/event-stream",
        headers={**_NO_CACHE, "X-Accel-Buffering": "no"},
    )


def _viewers(request: Request) -> list[int]:
    """The count of open live views, kept on the app (one box, changed on the event loop only)."""
    if not hasattr(request.app.state, "live_viewers"):
        request.app.state.live_viewers = [0]
    viewers: list[int] = request.app.state.live_viewers
    return viewers


async def _events(jobs: Jobs, job_id: str, folder: FilePath, viewers: list[int]) -> AsyncIterator[bytes]:
    """Each event is yielded only once the previous one was sent: one event is all a viewer
    buffers here, and frames it was too slow for are skipped (and counted), never queued."""
    feed = _Feed(folder)
    try:
        yield b": kitfleet live view\n\n"
        stats_at = 0.0
        while True:
            for frame in await feed.new_frames():
                yield _event("frame", frame)
            if time.monotonic() - stats_at >= STATS_EVERY_S:
                stats_at = time.monotonic()
                job = await asyncio.to_thread(jobs.get, job_id)
                yield _event("stats", feed.stats(job))
                if job.state in FINISHED_STATES:
                    yield _event("end", {"state": job.state, "error": job.error, "result": job.result})
                    return
            await asyncio.sleep(POLL_S)
    finally:
        viewers[0] -= 1


class _Feed:
    """What one viewer has seen of a job's live.json."""

    def __init__(self, folder: FilePath) -> None:
        self.folder = folder
        self.document: dict[str, Any] = {}
        self.seq, self.attempt, self.skipped = 0, None, 0
        self._mtime = 0

    async def new_frames(self) -> list[dict[str, Any]]:
        try:
            mtime = (self.folder / LIVE_JSON).stat().st_mtime_ns
        except OSError:
            return []
        if mtime == self._mtime:
            return []
        self._mtime = mtime
        document = await asyncio.to_thread(read_live, self.folder)
        if document is None:
            return []
        self.document = document
        if document.get("attempt") != self.attempt:  # a new attempt numbers its frames afresh
            self.attempt, self.seq = document.get("attempt"), 0
        fresh = [f for f in document.get("frames", []) if f.get("seq", 0) > self.seq]
        if fresh:
            self.skipped += fresh[0]["seq"] - self.seq - 1
            self.seq = fresh[-1]["seq"]
        return fresh

    def stats(self, job: JobInfo) -> dict[str, Any]:
        stats = dict(self.document.get("stats", {}))
        return {
            **stats,
            "state": job.state,
            "attempt": job.attempts,
            "skipped": self.skipped,
            "worker": self.document.get("state"),
            "source": self.document.get("source"),
            "interval_s": self.document.get("interval_s"),
        }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@stream_router.get(
    "/v1/jobs/{job_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(401, 404, 409, 422)},
)
async def snapshot(request: Request, job_id: JobId, _: Viewer) -> Response:
    """The latest annotated frame of a stream job, as JPEG. 200; 401; 404 unknown job or no frame
    yet; 409 not a stream job."""
    folder = (await _stream_job(request, job_id))[2]
    jpeg = await asyncio.to_thread(read_jpeg, folder)
    if jpeg is None:
        raise ApiError(
            404,
            "no_frame_yet",
            f"stream job {job_id} has not processed a frame yet",
            "wait until it runs, or check its log for why it cannot read its source",
        )
    return Response(jpeg, media_type="image/jpeg", headers=_NO_CACHE)


@stream_router.get(
    "/v1/jobs/{job_id}/snapshots", response_model=list[str], responses=error_responses(401, 404, 409, 422)
)
async def kept_snapshots(request: Request, job_id: JobId, _: Viewer) -> list[str]:
    """Names of the annotated frames with detections the job kept, oldest first. 200; 401; 404; 409."""
    folder = (await _stream_job(request, job_id))[2]
    return await asyncio.to_thread(_snapshot_names, folder / RESULTS / SNAPSHOTS)


def _snapshot_names(folder: FilePath) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg")) if folder.is_dir() else []


@stream_router.get(
    "/v1/jobs/{job_id}/snapshots/{name}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(401, 404, 409, 422)},
)
async def kept_snapshot(request: Request, job_id: JobId, name: SnapshotName, _: Viewer) -> Response:
    """One kept snapshot. 200; 401; 404 unknown job or snapshot (the oldest are deleted); 409."""
    folder = (await _stream_job(request, job_id))[2]
    try:
        data = await asyncio.to_thread((folder / RESULTS / SNAPSHOTS / name).read_bytes)
    except OSError:
        raise ApiError(
            404,
            "snapshot_not_found",
            f"job {job_id} has no snapshot {name}",
            "a stream keeps only its newest snapshots (`kitfleet stream start --snapshots N`); "
            "the Live tab shows the latest",
        ) from None
    return Response(data, media_type="image/jpeg")
