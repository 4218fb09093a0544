"""Bearer-token checks as FastAPI dependencies, one per scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from agent.api.schemas import Scope
from agent.auth.tokens import Caller
from agent.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kitfleet-agent"'}


def require(scope: Scope) -> Callable[[Request], Caller]:
    """A dependency that admits callers whose token carries at least `scope`."""

    def check(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthenticated", "this call needs a bearer token",
                           "adopt the kit with `kitfleet adopt` first", headers=_CHALLENGE)
        caller = request.app.state.agent.tokens.authenticate(secret.strip())
        if caller is None:
            raise ApiError(401, "invalid_token", "the token is unknown or was revoked",
                           "adopt the kit again to get a new token", headers=_CHALLENGE)
        if not caller.allows(scope):
            raise ApiError(403, "insufficient_scope",
                           f"this call needs the {scope} scope; your token has {caller.scope}")
        assert isinstance(caller, Caller)
        return caller

    return check
