"""The audit log's routes. Each handler's docstring lists its status codes.

Both need the admin scope: the log names every app identity and token that changed this kit and
when, the same knowledge GET /v1/tokens guards; a viewer token (a wall display, a colleague's
read-only app) sees the fleet's state, not who holds power over it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from agent.api.auth import require
from agent.api.state import AgentState
from agent.audit import AuditLog
from agent.auth.tokens import Caller
from agent.wire import MAX_INT64, AuditCheck, AuditEntry, error_responses

audit_router = APIRouter(tags=["audit"])
Admin = Annotated[Caller, Depends(require("admin"))]


def _log(request: Request) -> AuditLog:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return AuditLog.of(state.db, state.settings)


@audit_router.get("/v1/audit", response_model=list[AuditEntry], responses=error_responses(401, 403, 422))
def audit(
    request: Request,
    _: Admin,
    since_seq: Annotated[
        int, Query(ge=0, le=MAX_INT64, description="entries after this sequence number")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[AuditEntry]:
    """Audit entries after `since_seq`, oldest first; ask again from the last seq. The first
    may come after `since_seq + 1` when older segments were rotated out. 200; 401; 403; 422."""
    return _log(request).since(since_seq, limit)


@audit_router.get("/v1/audit/verify", response_model=AuditCheck, responses=error_responses(401, 403))
def verify(request: Request, _: Admin) -> AuditCheck:
    """Check the kept chain on the kit: every break found, none when whole, and from which
    entry it is kept. 200; 401; 403."""
    kept = _log(request).check()
    head = kept.head
    return AuditCheck(
        entries=head.seq if head else 0,
        head_hash=head.hash if head else None,
        problems=kept.problems,
        kept_from=kept.kept_from,
        note=kept.note,
    )
