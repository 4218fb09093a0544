"""Job calls: the queue, logs, result files, datasets to work on, cron schedules, and the live
view of a stream job."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agent.wire import (
    DatasetInfo,
    DatasetUpload,
    DatasetUploadRequest,
    JobInfo,
    JobLogs,
    JobRequest,
    JobResults,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
)
from app.fleet.client._answers import MAX_ANSWER, MAX_LIVE_LINE, agent_error, bounded_body, bounded_lines
from app.fleet.client._httpx import httpx
from app.fleet.client._transport import KitConnection, is_verify_failure, reason
from app.fleet.errors import BadAnswer, KitUnreachable

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows; the staging folder is new there anyway
_LIVE_SILENCE = 15.0  # seconds without a live event before the kit counts as gone


class JobCalls(KitConnection):
    """The work a kit does on its own: jobs, their results, datasets and schedules."""

    async def submit_job(self, request: JobRequest) -> tuple[JobInfo, bool]:
        """Queue a job; the flag is False when the idempotency key had already made it."""
        response = await self._request("POST", "/v1/jobs", json=request.model_dump(mode="json"))
        return self._parsed(JobInfo, response), response.status_code == 201

    async def jobs(self, states: list[str] | None = None, limit: int = 100, offset: int = 0) -> list[JobInfo]:
        params: dict[str, Any] = {"limit": limit, "offset": offset} | ({"state": states} if states else {})
        return (await self._list(JobInfo, "/v1/jobs", params=params))[:limit]

    async def job(self, job_id: str) -> JobInfo:
        return await self._get(JobInfo, f"/v1/jobs/{job_id}")

    async def job_logs(self, job_id: str, offset: int = 0) -> JobLogs:
        return await self._get(JobLogs, f"/v1/jobs/{job_id}/logs", params={"offset": offset})

    async def cancel_job(self, job_id: str) -> JobInfo:
        return await self._call(JobInfo, "POST", f"/v1/jobs/{job_id}/cancel")

    async def delete_job(self, job_id: str) -> None:
        await self._request("DELETE", f"/v1/jobs/{job_id}")

    async def job_results(self, job_id: str) -> JobResults:
        return await self._get(JobResults, f"/v1/jobs/{job_id}/results")

    async def download_result(self, job_id: str, name: str, dest: Path, size: int) -> None:
        """Stream one result file to `dest` through a new temporary beside it, holding the kit to
        the `size` it listed: a byte more is never written, a byte less is no file (BadAnswer)."""
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            async with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/results/{quote(name, safe='')}", timeout=self._long()
            ) as response:
                if response.status_code >= 400:
                    refusal = await bounded_body(response, MAX_ANSWER, self.name)
                    raise agent_error(response.status_code, refusal)
                # a new file: never one that is there, never through a link
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
                with os.fdopen(fd, "wb") as out:
                    written = 0
                    async for chunk in response.aiter_bytes(1 << 20):
                        if written + len(chunk) > size:
                            raise BadAnswer(
                                f"{self.name}: {name} came with more than the {size} "
                                "bytes it listed; the download was stopped"
                            )
                        out.write(chunk)
                        written += len(chunk)
            if written != size:
                raise BadAnswer(f"{self.name}: {name} ended after {written} of the {size} bytes it listed")
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise KitUnreachable(f"{self.name}: download of {name} broke off: {reason(exc)}") from exc
        finally:
            partial.unlink(missing_ok=True)

    async def upload_dataset(
        self, name: str, tar: AsyncIterator[bytes], size: int | None = None
    ) -> DatasetInfo:
        """`size`, the archive's exact length, lets the kit refuse it before a byte is sent."""
        length = {} if size is None else {"Content-Length": str(size)}
        return await self._call(
            DatasetInfo,
            "PUT",
            f"/v1/datasets/{name}",
            content=tar,
            headers={"Content-Type": "application/x-tar", **length},
            timeout=self._long(),
        )

    async def start_dataset_upload(self, name: str, size: int) -> DatasetUpload:
        """Begin a resumable upload of an archive of `size` bytes, or learn where one stands."""
        body = DatasetUploadRequest(size=size).model_dump(mode="json")
        return await self._call(DatasetUpload, "POST", f"/v1/datasets/{name}/upload", json=body)

    async def send_dataset(self, name: str, offset: int, chunks: AsyncIterator[bytes]) -> DatasetUpload:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/x-tar"}
        return await self._call(
            DatasetUpload,
            "PATCH",
            f"/v1/datasets/{name}/upload",
            content=chunks,
            headers=headers,
            timeout=self._long(),
        )

    async def commit_dataset(self, name: str) -> DatasetInfo:
        return await self._call(
            DatasetInfo, "POST", f"/v1/datasets/{name}/upload/commit", timeout=self._long()
        )

    async def datasets(self) -> list[DatasetInfo]:
        return await self._list(DatasetInfo, "/v1/datasets")

    async def create_schedule(self, request: ScheduleRequest) -> ScheduleInfo:
        return await self._call(ScheduleInfo, "POST", "/v1/schedules", json=request.model_dump(mode="json"))

    async def schedules(self) -> list[ScheduleInfo]:
        return await self._list(ScheduleInfo, "/v1/schedules")

    async def update_schedule(self, schedule_id: str, update: ScheduleUpdate) -> ScheduleInfo:
        return await self._call(
            ScheduleInfo,
            "PATCH",
            f"/v1/schedules/{schedule_id}",
            json=update.model_dump(mode="json", exclude_none=True),
        )

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")

    # stream jobs (live results) -------------------------------------------------

    async def live_lines(self, job_id: str) -> AsyncIterator[str]:
        """The lines of a stream job's Server-Sent Events, until the kit ends them.

        The kit sends stats every second, so a read that waits `_LIVE_SILENCE` s means it is gone.
        """
        timeout = httpx.Timeout(self._timeout, read=_LIVE_SILENCE)
        try:
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/live", timeout=timeout) as response:
                if response.status_code >= 400:
                    refusal = await bounded_body(response, MAX_ANSWER, self.name)
                    raise agent_error(response.status_code, refusal)
                async for line in bounded_lines(response, MAX_LIVE_LINE, self.name):
                    yield line
        except httpx.ConnectError as exc:
            if is_verify_failure(exc):
                await self._raise_identity_changed()
            raise KitUnreachable(f"{self.name}: live view not reachable: {reason(exc)}") from exc
        except httpx.TransportError as exc:  # timeouts included
            raise KitUnreachable(f"{self.name}: the live view broke off: {reason(exc)}") from exc

    async def snapshot(self, job_id: str) -> bytes:
        """The latest annotated frame of a stream job, as JPEG."""
        return (await self._request("GET", f"/v1/jobs/{job_id}/snapshot")).content
