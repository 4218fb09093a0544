"""The agent API client: httpx over TLS pinned to the kit's certificate."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from agent.api.schemas import (
    Facts,
    Health,
    InferResult,
    Manifest,
    Metrics,
    ModelInfo,
    PairRequest,
    PairResponse,
    UploadRequest,
    UploadStatus,
)
from app.fleet.errors import AgentError, IdentityChanged, KitUnreachable
from app.fleet.tls import async_fetch_certificate, pinned_context


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
            timeout=httpx.Timeout(self._timeout, read=600.0)))

    async def commit_upload(self, upload_id: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call(
            "POST", f"/v1/uploads/{upload_id}/commit", timeout=httpx.Timeout(self._timeout, read=600.0)))

    async def activate(self, name: str, version: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call(
            "POST", f"/v1/models/{name}/activate", json={"version": version}))

    async def rollback(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(await self._call("POST", f"/v1/models/{name}/rollback"))

    async def delete_version(self, name: str, version: str, force: bool = False) -> None:
        await self._call("DELETE", f"/v1/models/{name}/versions/{version}",
                         params={"force": str(force).lower()})

    async def infer(self, name: str, payload: bytes, content_type: str,
                    version: str | None = None, top_k: int = 5) -> InferResult | bytes:
        """JSON result for classification/detection; the raw .npz bytes for raw models."""
        params: dict[str, Any] = {"top_k": top_k} | ({"version": version} if version else {})
        response = await self._request("POST", f"/v1/models/{name}/infer", content=payload,
                                       params=params, headers={"Content-Type": content_type})
        if response.headers.get("content-type", "").startswith("application/x-npz"):
            return response.content
        return InferResult.model_validate(response.json())

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
