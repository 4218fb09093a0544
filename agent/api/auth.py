"""Bearer-token checks: one middleware that refuses before any body is read, and one FastAPI
dependency per scope that names the caller to the handler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from agent.api.errors import refusal_response
from agent.auth.tokens import Caller
from agent.errors import ApiError, Refusal
from agent.wire import Scope

__all__ = ["CALLER_KEY", "Authenticate", "require"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kitfleet-agent"'}
CALLER_KEY = "kitfleet.caller"  # the authenticated caller, in the request state (audit_trail.py)
_SCOPE_ATTR = "kitfleet_scope"  # set on require()'s checks: which routes need which scope


async def authenticate(state: Any, header: str) -> Caller:
    """The caller a bearer token stands for, or a 401 saying why there is none.

    A token verified lately costs no thread hop; one not seen lately is looked up in a thread.
    """
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "this call needs a bearer token",
            "adopt the kit with `kitfleet adopt` first",
            headers=_CHALLENGE,
        )
    tokens = state.tokens
    caller = tokens.recently_verified(secret.strip())
    if caller is None:
        caller = await asyncio.to_thread(tokens.authenticate, secret.strip())
    if caller is None:
        recovery = state.db.recovery
        if recovery is not None:  # agent/db.py quarantined a damaged database at start-up
            raise ApiError(
                401,
                "invalid_token",
                "the kit lost its tokens: its database was damaged and replaced "
                f"(kept as {recovery.quarantined})",
                "adopt the kit again to get a new token",
                headers=_CHALLENGE,
            )
        raise ApiError(
            401,
            "invalid_token",
            "the token is unknown or was revoked",
            "adopt the kit again to get a new token",
            headers=_CHALLENGE,
        )
    assert isinstance(caller, Caller)
    return caller


def _allow(caller: Caller, scope: Scope) -> None:
    if not caller.allows(scope):
        raise ApiError(
            403, "insufficient_scope", f"this call needs the {scope} scope; your token has {caller.scope}"
        )


def require(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that admits callers whose token carries at least `scope`.

    `Authenticate` has already checked the token of an HTTP call before its body was read; the
    dependency names the caller to the handler (and checks a WebSocket's token itself).
    """

    async def check(request: Request) -> Caller:
        state = request.scope.setdefault("state", {})
        caller = state.get(CALLER_KEY)
        if not isinstance(caller, Caller):
            caller = await authenticate(request.app.state.agent, request.headers.get("authorization", ""))
            state[CALLER_KEY] = caller  # for the audit trail
        _allow(caller, scope)
        return caller

    setattr(check, _SCOPE_ATTR, scope)
    return check


class Authenticate:
    """Refuse a call to an authenticated route (401, or 403 for too small a scope) before
    anything reads its body: an unauthenticated client gets nothing parsed, and nothing it
    sends reaches the audit log. Which routes need which scope is read from their `require`
    dependencies, so a route cannot be added with one and be left open here."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._routes = [(route, _needed_scope(route)) for route in routes]

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        needed = self._needed(scope) if scope["type"] == "http" else None
        if needed is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            caller = await authenticate(
                scope["app"].state.agent, headers.get(b"authorization", b"").decode("latin-1")
            )
            scope.setdefault("state", {})[CALLER_KEY] = caller  # the audit trail names it
            _allow(caller, needed)
        except Refusal as exc:
            refusal = refusal_response(exc)
            if _has_body(headers):  # unread: close rather than read it only to reuse the connection
                refusal.headers["connection"] = "close"
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _needed(self, scope: AsgiScope) -> Scope | None:
        """The scope the route this call goes to needs; the least of them when only its path
        matches (the method is wrong: a 405 still needs a token); None when the route is open
        or there is none (404)."""
        partial: list[Scope] = []
        for route, needed in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return needed
            if match is Match.PARTIAL and needed is not None:
                partial.append(needed)
        return "viewer" if partial else None


def _needed_scope(route: BaseRoute) -> Scope | None:
    if not isinstance(route, APIRoute):
        return None
    pending, found = list(route.dependant.dependencies), None
    while pending:
        dependant = pending.pop()
        found = getattr(dependant.call, _SCOPE_ATTR, None) or found
        pending += dependant.dependencies
    return found


def _has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
