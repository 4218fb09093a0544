"""The agent API client: httpx over TLS pinned to the kit's certificate."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agent.api.schemas import (
    DatasetInfo,
    Facts,
    Health,
    InferResult,
    JobInfo,
    JobLogs,
    JobRequest,
    JobResults,
    Manifest,
    Metrics,
    ModelInfo,
    PairRequest,
    PairResponse,
    ScheduleInfo,
    ScheduleRequest,
    ScheduleUpdate,
    UploadRequest,
    UploadStatus,
)
from app.fleet.errors import AgentError, IdentityChanged, KitUnreachable
from app.fleet.tls import async_fetch_certificate, pinned_context

_LONG = 600.0  # seconds to wait for a large transfer's answer


@dataclass(frozen=True)
class RawOutputs:
    """A raw model's answer: its output tensors as .npz bytes, and the model that made them."""

    npz: bytes
    version: str
    sha256: str


class KitClient:
    """One kit's API. The bearer token is only ever sent over the pinned connection."""

    def __init__(
        self, name: str, host: str, port: int, cert_pem: str, device_id: str,
        token: str = "", timeout: float = 5.0,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.device_id = device_id
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=f"https://{_url_host(host)}:{port}",
            verify=pinned_context(cert_pem),
            headers=headers,
            timeout=timeout,
        )

    async def __aenter__(self) -> KitClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> Health:
        health = Health.model_validate(await self._get("/v1/health"))
        if health.device_id != self.device_id:  # a pinned handshake makes this unreachable
            raise IdentityChanged(self.name, self.device_id, health.device_id)
        return health

    async def pair(self, request: PairRequest) -> PairResponse:
        return PairResponse.model_validate(
            await self._call("POST", "/v1/pair", json=request.model_dump()))

    async def facts(self) -> Facts:
        return Facts.model_validate(await self._get("/v1/facts"))

    async def metrics(self, since: float = 0.0) -> Metrics:
        return Metrics.model_validate(await self._get("/v1/metrics", params={"since": since}))

    # models -------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in await self._get("/v1/models")]

    async def start_upload(self, manifest: Manifest, activate: bool) -> UploadStatus:
        body = UploadRequest(manifest=manifest, activate=activate).model_dump(mode="json")
        return UploadStatus.model_validate(await self._call("POST", "/v1/uploads", json=body))

    async def upload_status(self, upload_id: str) -> UploadStatus:
        return UploadStatus.model_validate(await self._get(f"/v1/uploads/{upload_id}"))

    async def send_upload(self, upload_id: str, offset: int,
                          chunks: AsyncIterator[bytes]) -> UploadStatus:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        return UploadStatus.model_validate(await self._call(
            "PATCH", f"/v1/uploads/{upload_id}", content=chunks, headers=headers,
            timeout=httpx.Timeout(self._timeout, read=_LONG)))

    async def commit_upload(self, upload_id: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call(
            "POST", f"/v1/uploads/{upload_id}/commit", timeout=httpx.Timeout(self._timeout, read=_LONG)))

    async def activate(self, name: str, version: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call(
            "POST", f"/v1/models/{name}/activate", json={"version": version}))

    async def rollback(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call("POST", f"/v1/models/{name}/rollback"))

    async def delete_version(self, name: str, version: str, force: bool = False) -> None:
        await self._call("DELETE", f"/v1/models/{name}/versions/{version}",
                         params={"force": str(force).lower()})

    async def infer(self, name: str, payload: bytes, content_type: str,
                    version: str | None = None, top_k: int = 5) -> InferResult | RawOutputs:
        """JSON result for classification/detection; the .npz outputs for a raw model."""
        params: dict[str, Any] = {"top_k": top_k} | ({"version": version} if version else {})
        response = await self._request("POST", f"/v1/models/{name}/infer", content=payload,
                                       params=params, headers={"Content-Type": content_type})
        if response.headers.get("content-type", "").startswith("application/x-npz"):
            return RawOutputs(response.content, response.headers.get("x-model-version", ""),
                              response.headers.get("x-model-sha256", ""))
        return InferResult.model_validate(response.json())

    # jobs ---------------------------------------------------------------------

    async def submit_job(self, request: JobRequest) -> tuple[JobInfo, bool]:
        """Queue a job; the flag is False when the idempotency key had already made it."""
        response = await self._request("POST", "/v1/jobs", json=request.model_dump(mode="json"))
        return JobInfo.model_validate(response.json()), response.status_code == 201

    async def jobs(self, states: list[str] | None = None, limit: int = 100) -> list[JobInfo]:
        params: dict[str, Any] = {"limit": limit} | ({"state": states} if states else {})
        return [JobInfo.model_validate(j) for j in await self._get("/v1/jobs", params=params)]

    async def job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(await self._get(f"/v1/jobs/{job_id}"))

    async def job_logs(self, job_id: str, offset: int = 0) -> JobLogs:
        return JobLogs.model_validate(await self._get(f"/v1/jobs/{job_id}/logs",
                                                      params={"offset": offset}))

    async def cancel_job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(await self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    async def delete_job(self, job_id: str) -> None:
        await self._call("DELETE", f"/v1/jobs/{job_id}")

    async def job_results(self, job_id: str) -> JobResults:
        return JobResults.model_validate(await self._get(f"/v1/jobs/{job_id}/results"))

    async def download_result(self, job_id: str, name: str, dest: Path) -> int:
        """Stream one result file to `dest` through a temporary beside it; returns its size."""
        partial = dest.with_name(f".{dest.name}.partial")
        size = 0
        try:
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/results/{name}",
                                         timeout=httpx.Timeout(self._timeout, read=_LONG)) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _agent_error(response)
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise KitUnreachable(f"{self.name}: download of {name} broke off: {_reason(exc)}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return size

    async def upload_dataset(self, name: str, tar: AsyncIterator[bytes]) -> DatasetInfo:
        return DatasetInfo.model_validate(await self._call(
            "PUT", f"/v1/datasets/{name}", content=tar, headers={"Content-Type": "application/x-tar"},
            timeout=httpx.Timeout(self._timeout, read=_LONG)))

    async def datasets(self) -> list[DatasetInfo]:
        return [DatasetInfo.model_validate(d) for d in await self._get("/v1/datasets")]

    async def create_schedule(self, request: ScheduleRequest) -> ScheduleInfo:
        return ScheduleInfo.model_validate(await self._call(
            "POST", "/v1/schedules", json=request.model_dump(mode="json")))

    async def schedules(self) -> list[ScheduleInfo]:
        return [ScheduleInfo.model_validate(s) for s in await self._get("/v1/schedules")]

    async def update_schedule(self, schedule_id: str, update: ScheduleUpdate) -> ScheduleInfo:
        return ScheduleInfo.model_validate(await self._call(
            "PATCH", f"/v1/schedules/{schedule_id}", json=update.model_dump(mode="json", exclude_none=True)))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._call("DELETE", f"/v1/schedules/{schedule_id}")

    async def _get(self, path: str, **kwargs: Any) -> Any:
        return await self._call("GET", path, **kwargs)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        return response.json() if response.content else None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            if _is_verify_failure(exc):
                await self._raise_identity_changed()
            raise KitUnreachable(f"{self.name} at {self.host}:{self.port} is unreachable: "
                                 f"{_reason(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise KitUnreachable(f"{self.name} at {self.host}:{self.port} did not answer "
                                 f"within {self._timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise KitUnreachable(f"{self.name} at {self.host}:{self.port}: {_reason(exc)}") from exc
        if response.status_code >= 400:
            raise _agent_error(response)
        return response

    async def _raise_identity_changed(self) -> None:
        try:
            _, seen = await async_fetch_certificate(self.host, self.port, self._timeout)
        except OSError as exc:
            raise KitUnreachable(f"{self.name}: TLS failed and the certificate could not "
                                 f"be read: {exc}") from exc
        raise IdentityChanged(self.name, self.device_id, seen)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_verify_failure(exc: Exception) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _agent_error(response: httpx.Response) -> AgentError:
    try:
        body = response.json()
        return AgentError(response.status_code, body.get("error", "error"),
                          body.get("message", response.text), body.get("hint"))
    except ValueError:
        return AgentError(response.status_code, "error", response.text[:200] or "no body", None)
