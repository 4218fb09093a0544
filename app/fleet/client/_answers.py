"""A kit's answers as the app reads them: never past a size bound, and a refusal sorted into
AgentError with the kit's own words clipped to what a person reads."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter

from app.fleet.errors import AgentError, BadAnswer

if TYPE_CHECKING:
    from app.fleet.client._httpx import httpx

# What the app reads of one answer at most: a kit decides how much it sends, and an answer is held
# in memory whole. JSON pages are far below (1000 jobs ≈ 2 MiB); a raw model's outputs can be big.
MAX_ANSWER = 32 << 20
MAX_RAW_OUTPUTS = 512 << 20
MAX_LIVE_LINE = 1 << 20
_TEXT = 2000  # characters kept of each part of a refusal: it is shown to a person


@dataclass(frozen=True)
class Read:
    """An answer read whole, within its bound: what the calls use of it."""

    status_code: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    content: bytes
    path: str  # the path asked, for messages


_WIRE_ONLY = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def read_headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """An answer's headers as Read keeps them (as httpx's Headers.get answers), for the body as
    read: how it was framed and encoded on the wire is left out (a Read's content is the body as
    it came, never decoded by a content-encoding)."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in _WIRE_ONLY:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def agent_error(status: int, body: bytes) -> AgentError:
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
    return AgentError(status, text("error") or "error", text("message") or fallback, text("hint"))


async def bounded_body(response: httpx.Response, limit: int, kit: str) -> bytes:
    """The whole (decoded) body of a streamed answer, or BadAnswer past `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big(kit, response.request.url.path, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_big(kit, response.request.url.path, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_big(kit: str, path: str, limit: int) -> BadAnswer:
    return BadAnswer(
        f"{kit}: the answer to {path} is larger than the {limit >> 20} MiB the app reads of one; "
        "it was not read"
    )


async def bounded_lines(response: httpx.Response, limit: int, kit: str) -> AsyncIterator[str]:
    """The lines of a streamed answer; a line longer than `limit` characters is BadAnswer."""
    pending = ""
    async for text in response.aiter_text():
        *lines, pending = (pending + text).split("\n")
        for line in lines:
            yield line.removesuffix("\r")
        if len(pending) > limit:
            raise BadAnswer(
                f"{kit}: a line of {response.request.url.path} is longer than "
                f"{limit >> 10} KiB; the live view was closed"
            )
    if pending:
        yield pending.removesuffix("\r")


def json_or_none(response: Read) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


@functools.cache
def list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]
