"""Record every audited API call, success or refusal, in one place.

An ASGI middleware rather than a line in each handler: the handlers stay about their work,
a route added later is audited by adding it to `AUDITED_CALLS`, and a refusal (403, 404,
409, 422…) is recorded as faithfully as a success. The entry is on disk before the answer
leaves, so an app never sees a change the kit has not recorded.

Not recorded: 401s (no valid token, so no actor to name, and anyone on the network could
fill the disk with them) and pairing attempts refused while pairing is locked out (429).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.auth import CALLER_KEY
from agent.api.schemas import audit_subject, audited_call
from agent.api.state import AgentState
from agent.audit import Actor, AuditLog
from agent.auth.tokens import Caller

__all__ = ["AuditTrail"]

log = logging.getLogger(__name__)
_MAX_CAPTURE = 64 * 1024  # JSON bodies only; streamed uploads are not read here
_STREAMED = frozenset({"dataset.upload"})


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = audited_call(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        action, params = found
        request_state: dict[str, Any] = scope.setdefault("state", {})
        body = bytearray()
        held: list[Message] = []

        async def tee() -> Message:
            message = await receive()
            if action not in _STREAMED and len(body) < _MAX_CAPTURE:
                body.extend(message.get("body", b""))
            return message

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, tee, hold)
        except Exception:
            await self._record(scope, action, params, request_state, bytes(body), 500, b"")
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        answer = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        await self._record(scope, action, params, request_state, bytes(body),
                           start["status"] if start else 500, answer)
        for message in held:
            await send(message)

    async def _record(self, scope: Scope, action: str, params: dict[str, str],
                      request_state: dict[str, Any], body: bytes, status: int, answer: bytes) -> None:
        if status == 401 or (action == "kit.adopt" and status == 429):
            return
        state = scope["app"].state.agent
        assert isinstance(state, AgentState)
        asked, got = _json(body), _json(answer)
        target, detail = audit_subject(action, params, asked, got)
        actor = _actor(request_state.get(CALLER_KEY), action, asked, got)
        if status >= 400:
            detail["message"] = str(got.get("message", "")) if isinstance(got, dict) else ""
        if scope.get("client"):
            detail["from"] = scope["client"][0]
        outcome = "ok" if status < 400 else f"{status} {_error_code(got)}"
        try:
            await asyncio.to_thread(_write, state, actor, action, params, target, outcome, detail)
        except sqlite3.Error as exc:  # e.g. a full disk: the call itself already happened
            log.error("audit entry for %s %s not stored: %s", action, target, exc)


def _write(state: AgentState, actor: Actor, action: str, params: dict[str, str], target: str,
           outcome: str, detail: dict[str, Any]) -> None:
    if action in ("model.deploy", "model.upload_abort"):  # name the model, not the upload id
        rows = state.db.query("SELECT name, version, sha256 FROM uploads WHERE id = ?",
                              (params["upload_id"],))
        if rows:
            target = f"{rows[0]['name']} {rows[0]['version']}"
            detail = {**detail, "sha256": rows[0]["sha256"], "upload_id": params["upload_id"]}
    AuditLog(state.db).append(actor, action, target, outcome, detail)


def _actor(caller: object, action: str, asked: Any, got: Any) -> Actor:
    if isinstance(caller, Caller):
        return Actor(caller.token_id, caller.label)
    if action == "kit.adopt" and isinstance(asked, dict):
        # Pairing has no token yet: the app names itself, and on success gets this token.
        label = f"{asked.get('app_name', 'kitfleet')} ({asked.get('app_id', '?')})"
        token_id = got.get("token_id", "") if isinstance(got, dict) else ""
        return Actor(str(token_id), label if token_id else f"{label}, unverified")
    return Actor("", "unknown")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _error_code(body: Any) -> str:
    return str(body.get("error", "error")) if isinstance(body, dict) else "error"
