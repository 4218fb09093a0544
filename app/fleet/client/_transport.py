"""One kit's HTTPS connection: TLS pinned to its certificate, each answer read within bounds and
checked against the wire contract, each failure sorted by cause, audited calls reported."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError

from agent.wire import IDLE_CLOSE_S, audited_call, device_id_from_der
from app.fleet.client._answers import (
    MAX_ANSWER,
    Read,
    agent_error,
    bounded_body,
    json_or_none,
    list_adapter,
    read_headers,
    too_big,
)
from app.fleet.client._gets import ConnectFailed, Gets, NotPinned, TooBig, TooSlow
from app.fleet.client._httpx import httpx
from app.fleet.errors import AgentError, BadAnswer, Error, IdentityChanged, KitUnreachable
from app.fleet.tls import async_fetch_certificate, pinned_context

LONG = 600.0  # seconds to wait for a large transfer's answer
# An idle connection is kept from one poll round to the next, 5 s later (httpx's default, 5 s,
# dropped it just before: a TLS handshake per kit per round), and dropped before the agent
# drops it, so no request is sent on a connection the agent is closing at that moment.
IDLE_KEPT_S = IDLE_CLOSE_S - 2
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound="KitConnection")

try:  # httpcore runs `import sniffio` on every request; when it is not installed, each attempt
    import sniffio  # noqa: F401 - is a failed import scanning sys.path (~0.25 ms, a fifth of a
except ImportError:  # fleet poll's CPU). Record the absence once, so the attempt fails at once.
    sys.modules["sniffio"] = None  # type: ignore[assignment]


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


class KitConnection:
    """The pinned connection the API calls go through. The bearer token is only ever sent on it."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        cert_pem: str,
        device_id: str,
        token: str = "",
        timeout: float = 5.0,
        on_call: CallHook | None = None,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.device_id = device_id
        self._on_call = on_call
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._cert_pem = cert_pem
        self._client: httpx.AsyncClient | None = None
        # The plain GETs (every poll) go by a leaner path than httpx (`_gets`), pinned to the
        # same certificate, with the same headers and timeout, straight to the kit as well.
        self._gets = Gets(
            host,
            port,
            ssl.PEM_cert_to_DER_cert(cert_pem),
            [("Host", f"{_url_host(host)}:{port}"), ("Accept", "*/*"), *self._headers.items()],
            timeout,
            IDLE_KEPT_S,
        )

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client for everything but plain GETs, made on first use: a poll never
        needs one, and making one is half a millisecond per kit at a 1,000-kit start."""
        if self._client is None:
            # trust_env off: a kit is reached straight, on the local network, with its
            # certificate pinned; a proxy the laptop's environment names for the office
            # (HTTPS_PROXY) cannot reach it, and the environment's CA bundle and .netrc have no
            # say in a pinned call.
            self._client = httpx.AsyncClient(
                base_url=f"https://{_url_host(self.host)}:{self.port}",
                verify=pinned_context(self._cert_pem),
                headers=self._headers,
                timeout=self._timeout,
                limits=httpx.Limits(keepalive_expiry=IDLE_KEPT_S),
                trust_env=False,
            )
        return self._client

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        await asyncio.gather(self._gets.aclose(), *([client.aclose()] if client else []))

    def _long(self) -> httpx.Timeout:
        """The timeout of a large transfer: connecting is as quick as ever, the answer may take long."""
        return httpx.Timeout(self._timeout, read=LONG)

    async def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return await self._call(model, "GET", path, **kwargs)

    async def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return self._parsed(model, await self._request(method, path, **kwargs))

    async def _list(self, model: type[M], path: str, **kwargs: Any) -> list[M]:
        response = await self._request("GET", path, **kwargs)
        try:
            return list_adapter(model).validate_json(response.content)
        except ValidationError as exc:
            raise self._broken(response, exc) from None

    def _parsed(self, model: type[M], response: Read) -> M:
        """The answer as the API promises it, or BadAnswer saying how it is not."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._broken(response, exc) from None

    def _broken(self, response: Read, exc: ValidationError) -> BadAnswer:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        return BadAnswer(
            f"{self.name}: the answer to {response.path} is not what the "
            f"API promises ({where}: {first['msg']}); is the agent up to date, and is "
            "this kit what it claims to be?"
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> Read:
        """One call; an audited one is also reported to `on_call`, however it ends."""
        if self._on_call is None or audited_call(method, path) is None:
            return await self._exchange(method, path, **kwargs)
        sent = kwargs.get("json")
        try:
            response = await self._exchange(method, path, **kwargs)
        except AgentError as exc:
            self._on_call(
                Call(
                    self.name,
                    self.device_id,
                    method,
                    path,
                    sent,
                    exc.status,
                    {"error": exc.error, "message": exc.message},
                    str(exc),
                )
            )
            raise
        except Error as exc:
            self._on_call(Call(self.name, self.device_id, method, path, sent, None, None, str(exc)))
            raise
        answer = (
            json_or_none(response)
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )
        self._on_call(Call(self.name, self.device_id, method, path, sent, response.status_code, answer))
        return response

    async def _exchange(self, method: str, path: str, limit: int = MAX_ANSWER, **kwargs: Any) -> Read:
        """One request and its answer, read whole but never past `limit` bytes."""
        if method == "GET" and kwargs.keys() <= {"params"}:
            return await self._get_plain(path, kwargs.get("params"), limit)
        try:
            request = self._http.build_request(method, path, **kwargs)
            streamed = await self._http.send(request, stream=True)
            try:
                body = await bounded_body(streamed, limit, self.name)
            finally:
                await streamed.aclose()
        except httpx.ConnectError as exc:
            if is_verify_failure(exc):
                await self._raise_identity_changed()
            raise KitUnreachable(f"{self._where} is unreachable: {reason(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise KitUnreachable(f"{self._where} did not answer within {self._timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise KitUnreachable(f"{self._where}: {reason(exc)}") from exc
        if streamed.status_code >= 400:
            raise agent_error(streamed.status_code, body)
        headers = read_headers(streamed.headers.multi_items())
        return Read(streamed.status_code, headers, body, request.url.path)

    async def _get_plain(self, path: str, params: dict[str, Any] | None, limit: int) -> Read:
        """`_exchange` of a GET with no more than query parameters, by `Gets` (never httpx)."""
        target = f"{path}?{_query(params)}" if params else path
        try:
            answer = await self._gets.get(target, limit)
        except NotPinned as exc:
            raise IdentityChanged(self.name, self.device_id, device_id_from_der(exc.seen)) from None
        except ConnectFailed as exc:
            raise KitUnreachable(f"{self._where} is unreachable: {exc}") from exc
        except asyncio.TimeoutError as exc:
            raise KitUnreachable(f"{self._where} did not answer within {self._timeout:g} s") from exc
        except TooBig:
            raise too_big(self.name, path, limit) from None
        except TooSlow as exc:
            raise KitUnreachable(f"{self._where}: {exc}") from None
        except OSError as exc:
            raise KitUnreachable(f"{self._where}: {reason(exc)}") from exc
        # No encoding was asked for (no Accept-Encoding): a body the kit says it compressed anyway
        # stays as it came, and fails the check of what it should be, never inflated past `limit`.
        if answer.status >= 400:
            raise agent_error(answer.status, answer.body)
        return Read(answer.status, read_headers(answer.headers), answer.body, path)

    @property
    def _where(self) -> str:
        return f"{self.name} at {self.host}:{self.port}"

    async def _raise_identity_changed(self) -> None:
        try:
            _, seen = await async_fetch_certificate(self.host, self.port, self._timeout)
        except OSError as exc:
            raise KitUnreachable(
                f"{self.name}: TLS failed and the certificate could not be read: {exc}"
            ) from exc
        raise IdentityChanged(self.name, self.device_id, seen)


def _query(params: dict[str, Any]) -> str:
    """The query string of `params` as httpx writes it: a list or tuple is the name repeated."""
    return urlencode(
        [
            (name, _query_value(one))
            for name, value in params.items()
            for one in (value if isinstance(value, list | tuple) else [value])
        ]
    )


def _query_value(value: object) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_verify_failure(exc: Exception) -> bool:
    """Whether a failed connection failed the pinned-certificate check (not the network)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
