"""GET /v1/overview: the kit's state in one answer, each part as its own route answers it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from agent.api.auth import require
from agent.api.routes import facts, health_of, metrics
from agent.api.routes_audit import audit
from agent.api.routes_jobs import list_jobs
from agent.api.routes_models import list_models
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.wire import MAX_INT64, OVERVIEW_PATH, Overview, error_responses

overview_router = APIRouter()
Viewer = Annotated[Caller, Depends(require("viewer"))]


# exclude_unset: the facts' families carry the fields their collectors set, as in GET /v1/facts.
@overview_router.get(
    OVERVIEW_PATH,
    response_model=Overview,
    response_model_exclude_unset=True,
    responses=error_responses(401, 422),
)
def overview(
    request: Request,
    caller: Viewer,
    since_seq: Annotated[
        int | None, Query(ge=-1, le=MAX_INT64, description="metric samples after this seq (all when absent)")
    ] = None,
    samples_limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    jobs_limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    facts_too: Annotated[bool, Query(alias="facts", description="include the facts")] = False,
    audit_since: Annotated[
        int | None, Query(ge=0, le=MAX_INT64, description="include audit entries after this seq (admin)")
    ] = None,
    audit_limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Overview:
    """Health, metric samples after `since_seq`, models, the newest jobs, and when asked the
    facts and the audit entries after `audit_since`: what a fleet view reads of a kit, in one
    request. A token below admin gets no audit entries and `audit_refused` saying so, not a 403
    for the whole answer. 200; 401; 422."""
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    entries, refused = None, None
    if audit_since is not None:
        if caller.allows("admin"):
            entries = audit(request, caller, since_seq=audit_since, limit=audit_limit)
        else:
            refused = f"the audit log needs an admin token; this one is {caller.scope}"
    return Overview(
        health=health_of(state),
        metrics=metrics(request, caller, since=0.0, limit=samples_limit, since_seq=since_seq),
        models=list_models(request, caller),
        jobs=list_jobs(request, caller, state=None, kind=None, schedule_id=None, limit=jobs_limit, offset=0),
        facts=facts(request, caller) if facts_too else None,
        audit=entries,
        audit_refused=refused,
    )
