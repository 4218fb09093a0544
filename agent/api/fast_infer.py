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
- the same work as the route (`routes_models.run_infer`) and the same answers: the result
  JSON, the .npz of a raw model, and errors as `{error, message, hint}`.

The route hops to a worker thread for the model run. Here a request runs on the event loop
itself when one client is asking (no other connection sent an infer request within
`SHARED_S`, none is running in a thread), the body is small (`INLINE_MAX_BYTES`), the model
is loaded and its last run took at most `INLINE_BUDGET_S`: waking a thread and waking the
loop again cost ~0.2 ms on the kit, more than a small classifier's whole run, and a lone
client waits for every one of them. The loop is then held for about that budget at most.
When several clients ask at once, requests go to the batcher's workers (when batching is
on and the request can be batched: batcher.py) or to threads of their own, so the loop keeps
reading and answering the others while models run.

OpenAPI still documents the route, and any request this path does not take is served by it.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.errors import error_response
from agent.api.routes_models import (
    Answer,
    async_batched,
    batcher_of,
    npz_response,
    run_infer,
    run_infer_loaded,
)
from agent.api.schemas import NAME_PATTERN, VERSION_PATTERN
from agent.api.state import AgentState
from agent.errors import ApiError

if TYPE_CHECKING:
    from agent.models.batcher import ImageBatcher, Ticket

__all__ = ["FastInfer"]

_PATH = re.compile(r"/v1/models/([^/]+)/infer")
_MAX_TOP_K = 100  # as the route's Query(le=100)
INLINE_BUDGET_S = 0.002
INLINE_MAX_BYTES = 64 * 1024  # a PNG or JPEG this size decodes within a few milliseconds
SHARED_S = 0.05
_JSON = [(b"content-type", b"application/json")]


class _Request(NamedTuple):
    name: str
    version: str | None
    top_k: int
    length: int  # of the body, as declared
    content_type: str | None


class FastInfer:
    def __init__(self, app: ASGIApp, state: AgentState, app_state: State) -> None:
        self.app, self.state, self.app_state = app, state, app_state
        self._away = 0  # requests of this path running off the loop now (a thread, a batch)
        self._last_run_s: dict[tuple[str, str | None], float] = {}  # by (name, version asked)
        self._last_client: Any = None  # (host, port) of the connection that asked last, and when
        self._last_seen = 0.0
        self._shared_until = 0.0  # monotonic time until which the kit counts as shared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self._eligible(scope) if scope["type"] == "http" else None
        if request is None:
            await self.app(scope, receive, send)
            return
        batcher = batcher_of(self.app_state, self.state.settings)
        with batcher.coming(request.name) if batcher else nullcontext() as ticket:
            messages, body = await _read_body(receive, request.length)
            if body is not None:
                await self._respond(scope, receive, send, request, body, batcher, ticket)
                return
        await self.app(scope, _replay(messages, receive), send)  # let the full path say what is wrong

    async def _respond(self, scope: Scope, receive: Receive, send: Send, request: _Request, body: bytes,
                       batcher: ImageBatcher | None, ticket: Ticket | None) -> None:
        name, version, top_k, _, content_type = request
        shared = self._note_client(scope.get("client"))
        try:
            manifest, result, tensors = await self._run(name, version, body, content_type, top_k,
                                                        not shared, batcher, ticket)
        except ApiError as exc:
            await error_response(exc.status, exc.error, exc.message, exc.hint, exc.headers)(
                scope, receive, send)
            return
        if tensors is not None:
            await npz_response(tensors, manifest.version, manifest.sha256)(scope, receive, send)
            return
        assert result is not None
        content = result.model_dump_json().encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON, (b"content-length", b"%d" % len(content))]})
        await send({"type": "http.response.body", "body": content})

    def _note_client(self, client: Any) -> bool:
        """True while requests come from more than one connection (one within SHARED_S of another)."""
        now = time.monotonic()
        if client != self._last_client and now - self._last_seen < SHARED_S:
            self._shared_until = now + SHARED_S
        self._last_client, self._last_seen = client, now
        return now < self._shared_until

    async def _run(self, name: str, version: str | None, body: bytes, content_type: str | None,
                   top_k: int, alone: bool, batcher: ImageBatcher | None, ticket: Ticket | None) -> Answer:
        key = (name, version)
        if (alone and not self._away and len(body) <= INLINE_MAX_BYTES
                and self._last_run_s.get(key, INLINE_BUDGET_S + 1) <= INLINE_BUDGET_S):
            if ticket is not None:
                ticket.close()  # not for the batcher: it must not wait for this one
            started = time.perf_counter()
            answer = run_infer_loaded(self.state, name, version, body, content_type, top_k)
            if answer is not None:
                self._last_run_s[key] = time.perf_counter() - started
                return answer

        def timed() -> Answer:
            started = time.perf_counter()
            answer = run_infer(self.state, name, version, body, content_type, top_k)
            self._last_run_s[key] = time.perf_counter() - started
            return answer

        self._away += 1
        try:
            # Only requests from several clients are batched: a lone client has nobody to share
            # a batch with, and its runs alone keep `_last_run_s` current for the inline rule.
            if batcher is not None and not alone:
                batched = await async_batched(self.state, batcher, name, version, body, content_type,
                                              top_k, ticket)
                if batched is not None:
                    return batched
            if ticket is not None:
                ticket.close()
            return await asyncio.to_thread(timed)
        finally:
            self._away -= 1

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
