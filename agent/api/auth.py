"""Bearer-token checks as FastAPI dependencies, one per scope."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request

from agent.api.schemas import Scope
from agent.auth.tokens import Caller
from agent.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kitfleet-agent"'}
CALLER_KEY = "kitfleet.caller"  # the authenticated caller, in the request state (audit_trail.py)


def require(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that admits callers whose token carries at least `scope`.

    It is async so a recently verified token costs no thread hop (a sync dependency runs in
    the thread pool on every request); a token not seen lately is looked up in a thread.
    """

    async def check(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthenticated", "this call needs a bearer token",
                           "adopt the kit with `kitfleet adopt` first", headers=_CHALLENGE)
        tokens = request.app.state.agent.tokens
        caller = tokens.recently_verified(secret.strip())
        if caller is None:
            caller = await asyncio.to_thread(tokens.authenticate, secret.strip())
        if caller is None:
            recovery = request.app.state.agent.db.recovery
            if recovery is not None:  # agent/db.py quarantined a damaged database at start-up
                raise ApiError(401, "invalid_token",
                               "the kit lost its tokens: its database was damaged and replaced "
                               f"(kept as {recovery.quarantined})",
                               "adopt the kit again to get a new token", headers=_CHALLENGE)
            raise ApiError(401, "invalid_token", "the token is unknown or was revoked",
                           "adopt the kit again to get a new token", headers=_CHALLENGE)
        request.scope.setdefault("state", {})[CALLER_KEY] = caller  # for the audit trail
        if not caller.allows(scope):
            raise ApiError(403, "insufficient_scope",
                           f"this call needs the {scope} scope; your token has {caller.scope}")
        assert isinstance(caller, Caller)
        return caller

    return check
