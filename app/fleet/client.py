"""The agent API client: httpx over TLS pinned to the kit's certificate."""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any

import httpx

from agent.api.schemas import Facts, Health, Metrics, PairRequest, PairResponse
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

    async def _get(self, path: str, **kwargs: Any) -> Any:
        return await self._call("GET", path, **kwargs)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
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
        return response.json() if response.content else None

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
