"""The pre-flight route. Its docstring lists its status codes.

Operator scope: it reads the kit's state (as a viewer may) but also re-runs each serving
model's checks in a child process, work a read-only wall display should not start. The audit
trail records every run (`kit.preflight` in AUDITED_CALLS) with what did not pass.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from agent.api.auth import require
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.preflight import Preflight
from agent.wire import PreflightAnswer, PreflightRequest, error_responses

preflight_router = APIRouter(tags=["preflight"])
Operator = Annotated[Caller, Depends(require("operator"))]


@preflight_router.post(
    "/v1/preflight", response_model=PreflightAnswer, responses=error_responses(400, 401, 403, 413, 422)
)
async def preflight(request: Request, body: PreflightRequest, _: Operator) -> PreflightAnswer:
    """Every kit-local readiness check, each pass/warn/fail with the action that fixes it; the
    kit's clock is in the answer for the laptop's skew check. 200; 400 not JSON; 401; 403; 413; 422."""
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    checks = Preflight(state.settings, state.db, state.models, state.infer, state.identity.device_id)
    return await asyncio.to_thread(checks.run, body)
