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
from agent.wire.preflight import ClockSetAnswer, ClockSetRequest

preflight_router = APIRouter(tags=["preflight"])
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]


@preflight_router.post(
    "/v1/preflight", response_model=PreflightAnswer, responses=error_responses(400, 401, 403, 413, 422)
)
async def preflight(request: Request, body: PreflightRequest, _: Operator) -> PreflightAnswer:
    """Every kit-local readiness check, each pass/warn/fail with the action that fixes it; the
    kit's clock is in the answer for the laptop's skew check. 200; 400 not JSON; 401; 403; 413; 422."""
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    checks = Preflight(
        state.settings, state.db, state.models, state.infer, state.identity.device_id, state.clock
    )
    return await asyncio.to_thread(checks.run, body)


@preflight_router.post(
    "/v1/clock", response_model=ClockSetAnswer, responses=error_responses(400, 401, 403, 409, 413, 422, 503)
)
async def set_clock(request: Request, body: ClockSetRequest, _: Admin) -> ClockSetAnswer:
    """Set the kit's clock to the laptop's (admin: schedules, job windows and certificates hang on
    it), through systemd-timedated and polkit; audited as `kit.clock`. 200 with how far it moved;
    400 not JSON; 401; 403 caller not admin, the kit forbids it (clock_control off) or polkit
    refuses; 409 the kit keeps time by NTP; 413; 422 a time outside 2023-2100; 503 no timedated."""
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return await asyncio.to_thread(state.clock.set, body.time)
