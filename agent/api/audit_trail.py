"""Record every audited API call, success or refusal, in one place.

An ASGI middleware rather than a line in each handler: the handlers stay about their work,
a route added later is audited by adding it to `AUDITED_CALLS`, and a refusal (403, 404,
409, 422…) is recorded as faithfully as a success. The entry is on disk before the answer
leaves, so an app never sees a change the kit has not recorded.

Not recorded: 401s (no valid token, so no actor to name, and anyone on the network could
fill the disk with them) and pairing attempts refused while pairing is locked out (429).
Repeated refusals from one client are counted, not written one by one (refusal_tally.py), and
the log itself is bounded (agent/audit.py), so no caller can grow it without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.auth import CALLER_KEY
from agent.api.refusal_tally import RefusalTally, Window
from agent.api.state import AgentState
from agent.audit import Actor, AuditLog
from agent.auth.tokens import Caller
from agent.wire import AUDIT_REFUSALS, audit_subject, audited_call

__all__ = ["AuditTrail", "write_counts"]

log = logging.getLogger(__name__)
_MAX_CAPTURE = 64 * 1024  # JSON bodies only; streamed uploads are not read here
_STREAMED = frozenset({"dataset.upload", "dataset.label"})


class AuditTrail:
    def __init__(self, app: ASGIApp, tally: RefusalTally) -> None:
        self.app = app
        self.tally = tally
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task[None]] = set()

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
        await self._record(
            scope, action, params, request_state, bytes(body), start["status"] if start else 500, answer
        )
        for message in held:
            await send(message)

    async def _record(
        self,
        scope: Scope,
        action: str,
        params: dict[str, str],
        request_state: dict[str, Any],
        body: bytes,
        status: int,
        answer: bytes,
    ) -> None:
        if status == 401 or (action == "kit.adopt" and status == 429):
            return
        state = scope["app"].state.agent
        assert isinstance(state, AgentState)
        got = _json(answer)
        outcome = "ok" if status < 400 else f"{status} {_error_code(got)}"
        client = scope["client"][0] if scope.get("client") else "unknown"
        if status >= 400 and await self._counted(state, client, f"{action} {outcome}"):
            return
        asked = _json(body)
        target, detail = audit_subject(action, params, asked, got)
        actor = _actor(request_state.get(CALLER_KEY), action, asked, got)
        if status >= 400:
            detail["message"] = str(got.get("message", "")) if isinstance(got, dict) else ""
        if scope.get("client"):
            detail["from"] = client
        try:
            await asyncio.to_thread(_write, state, actor, action, params, target, outcome, detail)
        except sqlite3.Error as exc:  # e.g. a full disk: the call itself already happened
            log.error("audit entry for %s %s not stored: %s", action, target, exc)

    async def _counted(self, state: AgentState, client: str, kind: str) -> bool:
        """Whether this refusal is only counted: a repeat within its client's window."""
        now = time.time()
        await self._write_closed(state, now)  # an ended window counts nothing more
        admitted = self.tally.admit(client, kind, now)
        self._arm(state)
        return not admitted

    async def _write_closed(self, state: AgentState, now: float) -> None:
        closed = self.tally.closed(now)
        if closed:
            try:
                await asyncio.to_thread(write_counts, state, closed)
            except sqlite3.Error as exc:
                log.error("audit counts of %d clients' refusals not stored: %s", len(closed), exc)

    def _arm(self, state: AgentState) -> None:
        """Write each window's count when it closes, even if its client has gone quiet."""
        closes = self.tally.next_close()
        if self._timer is not None or closes is None:
            return
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timer = None
            task = loop.create_task(self._write_closed(state, time.time()))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)
            task.add_done_callback(lambda _: self._arm(state))

        self._timer = loop.call_at(loop.time() + max(closes - time.time(), 0) + 0.01, due)


def write_counts(state: AgentState, windows: list[Window]) -> None:
    """One `audit.refusals` entry per window: how many refusals were counted, not written."""
    audit = AuditLog.of(state.db, state.settings)
    for window in windows:
        count = sum(window.counted.values())
        audit.append(
            Actor("", "kitfleet-agent"),
            AUDIT_REFUSALS,
            window.client,
            f"{count} refused",
            {
                "from": window.client,
                "count": count,
                "since": window.opened,
                "until": window.last,
                "calls": window.summary(),
            },
        )


def _write(
    state: AgentState,
    actor: Actor,
    action: str,
    params: dict[str, str],
    target: str,
    outcome: str,
    detail: dict[str, Any],
) -> None:
    if action in ("model.deploy", "model.upload_abort"):  # name the model, not the upload id
        rows = state.db.query(
            "SELECT name, version, sha256 FROM uploads WHERE id = ?", (params["upload_id"],)
        )
        if rows:
            target = f"{rows[0]['name']} {rows[0]['version']}"
            detail = {**detail, "sha256": rows[0]["sha256"], "upload_id": params["upload_id"]}
    AuditLog.of(state.db, state.settings).append(actor, action, target, outcome, detail)


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
    except (ValueError, RecursionError):  # a refused body may be anything, nested 100,000 deep
        return None


def _error_code(body: Any) -> str:
    return str(body.get("error", "error")) if isinstance(body, dict) else "error"
