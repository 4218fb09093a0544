"""The agent API client: httpx over TLS pinned to the kit's certificate."""

from __future__ import annotations

import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agent.api.schemas import (
    AuditEntry,
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
    audited_call,
)
from app.fleet.errors import AgentError, Error, IdentityChanged, KitUnreachable
from app.fleet.tls import async_fetch_certificate, pinned_context

_LONG = 600.0  # seconds to wait for a large transfer's answer

try:  # httpcore runs `import sniffio` on every request; when it is not installed, each attempt
    import sniffio  # noqa: F401 - is a failed import scanning sys.path (~0.25 ms, a fifth of a
except ImportError:  # fleet poll's CPU). Record the absence once, so the attempt fails at once.
    sys.modules["sniffio"] = None  # type: ignore[assignment]
_LIVE_SILENCE = 15.0  # seconds without a live event before the kit counts as gone


@dataclass(frozen=True)
class RawOutputs:
    """A raw model's answer: its output tensors as .npz bytes, and the model that made them."""

    npz: bytes
    version: str
    sha256: str


@dataclass(frozen=True)
class Call:
    """An audited call (AUDITED_CALLS) as it ended, for the app's own audit log."""

    kit: str
    device_id: str
    method: str
    path: str
    sent: Any  # the JSON body sent, if any
    status: int | None  # None when no answer came
    answer: Any  # the JSON answer, if any
    error: str = ""


CallHook = Callable[[Call], None]


class KitClient:
    """One kit's API. The bearer token is only ever sent over the pinned connection."""

    def __init__(
        self, name: str, host: str, port: int, cert_pem: str, device_id: str,
        token: str = "", timeout: float = 5.0, on_call: CallHook | None = None,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.device_id = device_id
        self._on_call = on_call
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

    async def metrics(self, since: float = 0.0, since_seq: int | None = None,
                      limit: int = 1000) -> Metrics:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if since_seq is not None:
            params["since_seq"] = since_seq
        return Metrics.model_validate(await self._get("/v1/metrics", params=params))

    async def audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        entries = await self._get("/v1/audit", params={"since_seq": since_seq, "limit": limit})
        return [AuditEntry.model_validate(e) for e in entries]

    async def revoke_token(self, token_id: str) -> None:
        await self._call("DELETE", f"/v1/tokens/{token_id}")

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
        """One call; an audited one is also reported to `on_call`, however it ends."""
        if self._on_call is None or audited_call(method, path) is None:
            return await self._exchange(method, path, **kwargs)
        sent = kwargs.get("json")
        try:
            response = await self._exchange(method, path, **kwargs)
        except AgentError as exc:
            self._on_call(Call(self.name, self.device_id, method, path, sent, exc.status,
                               {"error": exc.error, "message": exc.message}, str(exc)))
            raise
        except Error as exc:
            self._on_call(Call(self.name, self.device_id, method, path, sent, None, None, str(exc)))
            raise
        answer = response.json() if response.content and response.headers.get(
            "content-type", "").startswith("application/json") else None
        self._on_call(Call(self.name, self.device_id, method, path, sent, response.status_code, answer))
        return response

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
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

    # stream jobs (live results) -------------------------------------------------

    async def live_lines(self, job_id: str) -> AsyncIterator[str]:
        """The lines of a stream job's Server-Sent Events, until the kit ends them.

        The kit sends stats every second, so a read that waits `_LIVE_SILENCE` s means it is gone.
        """
        timeout = httpx.Timeout(self._timeout, read=_LIVE_SILENCE)
        try:
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/live", timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _agent_error(response)
                async for line in response.aiter_lines():
                    yield line
        except httpx.ConnectError as exc:
            if _is_verify_failure(exc):
                await self._raise_identity_changed()
            raise KitUnreachable(f"{self.name}: live view not reachable: {_reason(exc)}") from exc
        except httpx.TransportError as exc:  # timeouts included
            raise KitUnreachable(f"{self.name}: the live view broke off: {_reason(exc)}") from exc

    async def snapshot(self, job_id: str) -> bytes:
        """The latest annotated frame of a stream job, as JPEG."""
        return (await self._request("GET", f"/v1/jobs/{job_id}/snapshot")).content


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
