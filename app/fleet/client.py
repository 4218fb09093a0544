"""The agent API client: httpx over TLS pinned to the kit's certificate."""

from __future__ import annotations

import functools
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from agent.wire import (
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
from app.fleet.errors import AgentError, BadAnswer, Error, IdentityChanged, KitUnreachable
from app.fleet.tls import async_fetch_certificate, pinned_context

_LONG = 600.0  # seconds to wait for a large transfer's answer
# What the app reads of one answer at most: a kit decides how much it sends, and an answer is held
# in memory whole. JSON pages are far below (1000 jobs ≈ 2 MiB); a raw model's outputs can be big.
MAX_ANSWER = 32 << 20
MAX_RAW_OUTPUTS = 512 << 20
MAX_LIVE_LINE = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows; the staging folder is new there anyway
M = TypeVar("M", bound=BaseModel)

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
        health = await self._get(Health, "/v1/health")
        if health.device_id != self.device_id:  # a pinned handshake makes this unreachable
            raise IdentityChanged(self.name, self.device_id, health.device_id)
        return health

    async def pair(self, request: PairRequest) -> PairResponse:
        return await self._call(PairResponse, "POST", "/v1/pair", json=request.model_dump())

    async def facts(self) -> Facts:
        return await self._get(Facts, "/v1/facts")

    async def metrics(self, since: float = 0.0, since_seq: int | None = None,
                      limit: int = 1000) -> Metrics:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if since_seq is not None:
            params["since_seq"] = since_seq
        metrics = await self._get(Metrics, "/v1/metrics", params=params)
        return metrics.model_copy(update={"samples": metrics.samples[:limit]})  # no more than asked

    async def audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        entries = await self._list(AuditEntry, "/v1/audit", params={"since_seq": since_seq, "limit": limit})
        return entries[:limit]  # a kit sending more than asked does not get it kept

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"/v1/tokens/{token_id}")

    # models -------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        return await self._list(ModelInfo, "/v1/models")

    async def start_upload(self, manifest: Manifest, activate: bool) -> UploadStatus:
        body = UploadRequest(manifest=manifest, activate=activate).model_dump(mode="json")
        return await self._call(UploadStatus, "POST", "/v1/uploads", json=body)

    async def upload_status(self, upload_id: str) -> UploadStatus:
        return await self._get(UploadStatus, f"/v1/uploads/{upload_id}")

    async def send_upload(self, upload_id: str, offset: int,
                          chunks: AsyncIterator[bytes]) -> UploadStatus:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        return await self._call(UploadStatus, "PATCH", f"/v1/uploads/{upload_id}", content=chunks,
                                headers=headers, timeout=httpx.Timeout(self._timeout, read=_LONG))

    async def commit_upload(self, upload_id: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/uploads/{upload_id}/commit",
                                timeout=httpx.Timeout(self._timeout, read=_LONG))

    async def activate(self, name: str, version: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/models/{name}/activate",
                                json={"version": version})

    async def rollback(self, name: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/models/{name}/rollback")

    async def delete_version(self, name: str, version: str, force: bool = False) -> None:
        await self._request("DELETE", f"/v1/models/{name}/versions/{version}",
                            params={"force": str(force).lower()})

    async def infer(self, name: str, payload: bytes, content_type: str,
                    version: str | None = None, top_k: int = 5) -> InferResult | RawOutputs:
        """JSON result for classification/detection; the .npz outputs for a raw model."""
        params: dict[str, Any] = {"top_k": top_k} | ({"version": version} if version else {})
        response = await self._request("POST", f"/v1/models/{name}/infer", content=payload,
                                       params=params, headers={"Content-Type": content_type},
                                       limit=MAX_RAW_OUTPUTS)
        if response.headers.get("content-type", "").startswith("application/x-npz"):
            return RawOutputs(response.content, response.headers.get("x-model-version", ""),
                              response.headers.get("x-model-sha256", ""))
        return self._parsed(InferResult, response)

    # jobs ---------------------------------------------------------------------

    async def submit_job(self, request: JobRequest) -> tuple[JobInfo, bool]:
        """Queue a job; the flag is False when the idempotency key had already made it."""
        response = await self._request("POST", "/v1/jobs", json=request.model_dump(mode="json"))
        return self._parsed(JobInfo, response), response.status_code == 201

    async def jobs(self, states: list[str] | None = None, limit: int = 100) -> list[JobInfo]:
        params: dict[str, Any] = {"limit": limit} | ({"state": states} if states else {})
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
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/results/{quote(name, safe='')}",
                                         timeout=httpx.Timeout(self._timeout, read=_LONG)) as response:
                if response.status_code >= 400:
                    raise _agent_error(response, await _bounded_body(response, MAX_ANSWER, self.name))
                # a new file: never one that is there, never through a link
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
                with os.fdopen(fd, "wb") as out:
                    written = 0
                    async for chunk in response.aiter_bytes(1 << 20):
                        if written + len(chunk) > size:
                            raise BadAnswer(f"{self.name}: {name} came with more than the {size} "
                                            "bytes it listed; the download was stopped")
                        out.write(chunk)
                        written += len(chunk)
            if written != size:
                raise BadAnswer(f"{self.name}: {name} ended after {written} of the {size} bytes it listed")
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise KitUnreachable(f"{self.name}: download of {name} broke off: {_reason(exc)}") from exc
        finally:
            partial.unlink(missing_ok=True)

    async def upload_dataset(self, name: str, tar: AsyncIterator[bytes]) -> DatasetInfo:
        return await self._call(DatasetInfo, "PUT", f"/v1/datasets/{name}", content=tar,
                                headers={"Content-Type": "application/x-tar"},
                                timeout=httpx.Timeout(self._timeout, read=_LONG))

    async def datasets(self) -> list[DatasetInfo]:
        return await self._list(DatasetInfo, "/v1/datasets")

    async def create_schedule(self, request: ScheduleRequest) -> ScheduleInfo:
        return await self._call(ScheduleInfo, "POST", "/v1/schedules", json=request.model_dump(mode="json"))

    async def schedules(self) -> list[ScheduleInfo]:
        return await self._list(ScheduleInfo, "/v1/schedules")

    async def update_schedule(self, schedule_id: str, update: ScheduleUpdate) -> ScheduleInfo:
        return await self._call(ScheduleInfo, "PATCH", f"/v1/schedules/{schedule_id}",
                                json=update.model_dump(mode="json", exclude_none=True))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")

    async def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return await self._call(model, "GET", path, **kwargs)

    async def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return self._parsed(model, await self._request(method, path, **kwargs))

    async def _list(self, model: type[M], path: str, **kwargs: Any) -> list[M]:
        response = await self._request("GET", path, **kwargs)
        try:
            return _list_adapter(model).validate_json(response.content)
        except ValidationError as exc:
            raise self._broken(response, exc) from None

    def _parsed(self, model: type[M], response: httpx.Response) -> M:
        """The answer as the API promises it, or BadAnswer saying how it is not."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._broken(response, exc) from None

    def _broken(self, response: httpx.Response, exc: ValidationError) -> BadAnswer:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        return BadAnswer(f"{self.name}: the answer to {response.request.url.path} is not what the "
                         f"API promises ({where}: {first['msg']}); is the agent up to date, and is "
                         "this kit what it claims to be?")

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
        answer = _json_or_none(response) if response.headers.get(
            "content-type", "").startswith("application/json") else None
        self._on_call(Call(self.name, self.device_id, method, path, sent, response.status_code, answer))
        return response

    async def _exchange(self, method: str, path: str, limit: int = MAX_ANSWER,
                        **kwargs: Any) -> httpx.Response:
        """One request and its answer, read whole but never past `limit` bytes."""
        try:
            request = self._http.build_request(method, path, **kwargs)
            streamed = await self._http.send(request, stream=True)
            try:
                body = await _bounded_body(streamed, limit, self.name)
            finally:
                await streamed.aclose()
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
        if streamed.status_code >= 400:
            raise _agent_error(streamed, body)
        kept = [(k, v) for k, v in streamed.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(streamed.status_code, headers=kept, content=body, request=request)

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
                    raise _agent_error(response, await _bounded_body(response, MAX_ANSWER, self.name))
                async for line in _bounded_lines(response, MAX_LIVE_LINE, self.name):
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


_TEXT = 2000  # characters kept of each part of a refusal: it is shown to a person


def _agent_error(response: httpx.Response, body: bytes) -> AgentError:
    """The kit's refusal, from whatever it sent: an ErrorBody, or anything else, clipped."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    said: dict[str, Any] = data if isinstance(data, dict) else {}

    def text(key: str) -> str | None:
        value = said.get(key)
        return None if value is None else str(value)[:_TEXT]

    fallback = body[:200].decode("utf-8", "replace") or "no body"
    return AgentError(response.status_code, text("error") or "error", text("message") or fallback,
                      text("hint"))


async def _bounded_body(response: httpx.Response, limit: int, kit: str) -> bytes:
    """The whole (decoded) body of a streamed answer, or BadAnswer past `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_big(response, limit, kit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_big(response, limit, kit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(response: httpx.Response, limit: int, kit: str) -> BadAnswer:
    return BadAnswer(f"{kit}: the answer to {response.request.url.path} is larger than the "
                     f"{limit >> 20} MiB the app reads of one; it was not read")


async def _bounded_lines(response: httpx.Response, limit: int, kit: str) -> AsyncIterator[str]:
    """The lines of a streamed answer; a line longer than `limit` characters is BadAnswer."""
    pending = ""
    async for text in response.aiter_text():
        *lines, pending = (pending + text).split("\n")
        for line in lines:
            yield line.removesuffix("\r")
        if len(pending) > limit:
            raise BadAnswer(f"{kit}: a line of {response.request.url.path} is longer than "
                            f"{limit >> 10} KiB; the live view was closed")
    if pending:
        yield pending.removesuffix("\r")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


@functools.cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]
