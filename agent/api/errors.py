"""Turn refusals into 4xx JSON bodies that say what to fix, and bound request sizes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.errors import (
    ApiError,
    BadInput,
    Busy,
    Conflict,
    Forbidden,
    Invalid,
    NoRoom,
    NotFound,
    Refusal,
    TooLarge,
    Unavailable,
    Unsupported,
)
from agent.wire import ErrorBody

log = logging.getLogger(__name__)


# Refusals of a body the agent will not read (too large, no room for it): the connection
# closes after the answer, or the server would have to read the rest just to reuse it.
_CLOSES = frozenset({413, 507})


def error_response(
    status: int,
    error: str,
    message: str,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=error, message=message, hint=hint)
    if status in _CLOSES:
        headers = {**(headers or {}), "connection": "close"}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


# The one place a refusal's cause becomes an HTTP status.
_STATUS: dict[type[Refusal], int] = {
    BadInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    Busy: 429,
    Unavailable: 503,
    NoRoom: 507,
}


def status_of(refusal: Refusal) -> int:
    """The HTTP status that answers `refusal`."""
    if isinstance(refusal, ApiError):
        return refusal.status
    return next(status for kind, status in _STATUS.items() if isinstance(refusal, kind))


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The 4xx answer to a refusal, its hints (Retry-After, Upload-Offset) as headers."""
    headers = dict(refusal.headers) if isinstance(refusal, ApiError) else {}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    if refusal.resume_at is not None:
        headers["Upload-Offset"] = str(refusal.resume_at)
    return error_response(status_of(refusal), refusal.error, refusal.message, refusal.hint, headers)


async def _on_refusal(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return refusal_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(
            400,
            "malformed_json",
            "the request body is not valid JSON",
            "send a JSON object with Content-Type: application/json",
        )
    return error_response(
        422,
        "invalid_request",
        _describe(errors),
        "correct the fields named; a kitfleet app as new as the agent sends them right "
        "(`kitfleet --version`)",
    )


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {404: "not_found", 405: "method_not_allowed"}
    return error_response(
        exc.status_code,
        names.get(exc.status_code, "http_error"),
        str(exc.detail),
        headers=dict(exc.headers or {}),
    )


async def _on_database_error(_: Request, exc: Exception) -> JSONResponse:
    """A full disk refuses the database's writes: say so (507) instead of a bare 500."""
    assert isinstance(exc, sqlite3.OperationalError)
    if "disk is full" not in str(exc) and "disk I/O error" not in str(exc):
        raise exc
    log.error("database write refused: %s", exc)
    return error_response(
        507,
        "disk_full",
        "the kit's disk is full; nothing was changed",
        "free space on the kit (collect finished jobs, delete old datasets or "
        "model versions), then try again",
    )


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, _on_refusal)
    app.add_exception_handler(sqlite3.OperationalError, _on_database_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)


# JSON nested deeper than this is refused (400) before anything parses it: Python's parser,
# pydantic and the audit trail recurse, and 100,000 levels fit in a small body.
MAX_JSON_DEPTH = 64
# bytes.translate table: an opening bracket 1, a closing one -1 (0xff as int8), a quote 2
_BRACKETS = bytes(1 if b in b"[{" else 0xFF if b in b"]}" else 2 if b == 0x22 else 0 for b in range(256))


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `body`'s brackets outside strings nest deeper than `limit`: a few milliseconds
    for a body at the size bound, with no recursion and no parsing."""
    if body.count(b"[") + body.count(b"{") <= limit:  # the usual body: no need to look closer
        return False
    import numpy as np  # the agent has it (inference); only a bracket-heavy body gets here

    # escapes only occur inside strings: drop them so every quote left opens or closes one
    marks = np.frombuffer(body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_BRACKETS), np.int8)
    quote = marks == 2
    outside = (np.cumsum(quote, dtype=np.int32) & 1) == 0
    depth = np.cumsum(marks * (outside & ~quote), dtype=np.int32)
    return bool(depth.max(initial=0) > limit)


def _is_json(headers: dict[bytes, bytes]) -> bool:
    """FastAPI reads a body as JSON when it says so, or says nothing of its type."""
    kind = headers.get(b"content-type")
    return kind is None or b"json" in kind.lower()


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, whether or not Content-Length is sent, and JSON
    nested deeper than MAX_JSON_DEPTH with 400: the one place every JSON body passes through.

    Bodies are read up front (they are small JSON documents), so the route sees
    either the whole body or nothing; routes that stream large uploads opt out
    with `streams(path)` and enforce their own bound.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, streams: Callable[[str], bool]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streams(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if _is_json(headers) and json_too_deep(b"".join(m.get("body", b"") for m in messages)):
            await error_response(
                400,
                "json_too_deep",
                f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels",
                "send a flatter document: no field of this API nests that deep",
            )(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            "send a smaller body",
        )
        await response(scope, receive, send)
