"""`POST /v1/models/{name}/infer` on a short path, past FastAPI's router and dependencies.

Inference is the one call a kit answers many times a second, and the model run of a small
classifier takes half a millisecond: FastAPI's route matching over every route, dependency
solving and response validation cost more than that per request (measured in-process: 0.9 ms
of 1.6). This middleware answers the common case itself and hands everything else, untouched,
to the full application:

- only a well-formed request: the path, at most `top_k` and `version` in the query, a declared
  Content-Length within `max_infer_bytes`;
- only a bearer token the agent verified in the last seconds (`TokenStore.recently_verified`)
  with the operator scope; a token not seen lately takes the full path, which checks it;
- the same service as the route (`agent/models/service.py`, which alone chooses whether a
  request runs on the loop, in a batch or in a thread) and the same answers: the result JSON,
  the .npz of a raw model, and errors as `{error, message, hint}`.

Each answered request's stages (reading, queueing, decoding, ..., writing) are timed with a
stopwatch and summed per model for /metrics (`agent/metrics/timings.py`).

OpenAPI still documents the route, and any request this path does not take is served by it.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.errors import refusal_response
from agent.api.render import npz_response
from agent.api.state import AgentState
from agent.errors import Refusal
from agent.metrics.timings import OUTPUT, READ, WRITE, Stopwatch
from agent.models.service import InferCall
from agent.wire import NAME_PATTERN, VERSION_PATTERN

if TYPE_CHECKING:
    from agent.models.batcher import Ticket

__all__ = ["FastInfer"]

_PATH = re.compile(r"/v1/models/([^/]+)/infer")
_MAX_TOP_K = 100  # as the route's Query(le=100)
_JSON = [(b"content-type", b"application/json")]


class _Request(NamedTuple):
    name: str
    version: str | None
    top_k: int
    length: int  # of the body, as declared
    content_type: str | None


class FastInfer:
    def __init__(self, app: ASGIApp, state: AgentState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self._eligible(scope) if scope["type"] == "http" else None
        if request is None:
            await self.app(scope, receive, send)
            return
        watch = Stopwatch()
        with self.state.infer.coming(request.name) as ticket:
            messages, body = await _read_body(receive, request.length)
            if body is not None:
                watch.lap(READ)
                call = InferCall(
                    request.name, request.version, body, request.content_type, request.top_k, watch
                )
                await self._respond(scope, receive, send, call, ticket)
                return
        await self.app(scope, _replay(messages, receive), send)  # let the full path say what is wrong

    async def _respond(
        self, scope: Scope, receive: Receive, send: Send, call: InferCall, ticket: Ticket | None
    ) -> None:
        try:
            manifest, result, tensors = await self.state.infer.answer(call, scope.get("client"), ticket)
        except Refusal as exc:
            await refusal_response(exc)(scope, receive, send)
            return
        watch = call.watch
        assert watch is not None
        if tensors is not None:
            response = npz_response(tensors, manifest.version, manifest.sha256)
            watch.lap(OUTPUT)
            await response(scope, receive, send)
            self._written(manifest.name, watch)
            return
        assert result is not None
        content = result.model_dump_json().encode()
        watch.lap(OUTPUT)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON, (b"content-length", b"%d" % len(content))],
            }
        )
        await send({"type": "http.response.body", "body": content})
        self._written(manifest.name, watch)

    def _written(self, model: str, watch: Stopwatch) -> None:
        """Count the request's stages once its answer went to the connection: the connection
        writes what a step of the loop sent at the step's end (api/protocol.py), before the
        callback scheduled here runs."""

        def count() -> None:
            watch.lap(WRITE)
            self.state.infer.times.add(model, watch)

        asyncio.get_running_loop().call_soon(count)

    def _eligible(self, scope: Scope) -> _Request | None:
        """(name, version, top_k, body length, content type) when this path may answer, else None."""
        if scope["method"] != "POST" or (path := _PATH.fullmatch(scope["path"])) is None:
            return None
        name = path.group(1)
        if not re.fullmatch(NAME_PATTERN, name):
            return None
        query = _query(scope.get("query_string", b""))
        if query is None:
            return None
        version, top_k = query
        headers = dict(scope["headers"])
        kind, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        caller = self.state.tokens.recently_verified(secret.strip()) if kind.lower() == "bearer" else None
        if caller is None or not caller.allows("operator"):
            return None
        declared = headers.get(b"content-length", b"")
        if not declared.isdigit() or not 0 < int(declared) <= self.state.settings.max_infer_bytes:
            return None
        content_type = headers.get(b"content-type", b"").decode("latin-1") or None
        return _Request(name, version, top_k, int(declared), content_type)


def _query(raw: bytes) -> tuple[str | None, int] | None:
    """(version, top_k) from a query with only those, well formed; None for anything else."""
    version, top_k = None, 5
    if not raw:
        return version, top_k
    seen: set[str] = set()
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            return None
        seen.add(key)
        if key == "version" and re.fullmatch(VERSION_PATTERN, value):
            version = value
        elif key == "top_k" and re.fullmatch(r"[0-9]{1,3}", value) and 1 <= int(value) <= _MAX_TOP_K:
            top_k = int(value)
        else:
            return None
    return version, top_k


async def _read_body(receive: Receive, length: int) -> tuple[list[Message], bytes | None]:
    """The messages read, and the body when it came whole at the declared length."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body") or len(body) > length:
            break
    whole = message["type"] == "http.request" and len(body) == length
    return messages, bytes(body) if whole else None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay
