"""Build the agent's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from agent import __version__
from agent.api.audit_trail import AuditTrail, write_counts
from agent.api.auth import Authenticate
from agent.api.errors import BodyLimit, install_handlers
from agent.api.fast_infer import FastInfer
from agent.api.refusal_tally import RefusalTally
from agent.api.routes import router
from agent.api.routes_audit import audit_router
from agent.api.routes_field import field_router
from agent.api.routes_jobs import jobs_router
from agent.api.routes_models import models_router
from agent.api.routes_overview import overview_router
from agent.api.routes_preflight import preflight_router
from agent.api.routes_stream import stream_router
from agent.api.state import AgentState

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
log = logging.getLogger(__name__)


def create_app(state: AgentState, lifespan: Lifespan | None = None) -> FastInfer:
    tally = RefusalTally(state.settings.audit_refusal_window_s)
    app = FastAPI(
        title="kitfleet-agent",
        version=__version__,
        description="The API of a kitfleet kit. Every route but /v1/health and /v1/pair "
        "needs `Authorization: Bearer <token>`.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,  # served behind auth instead
        lifespan=_writing_counts_at_stop(lifespan, tally, state),
    )
    app.state.agent = state
    install_handlers(app)
    routers = (
        router,
        models_router,
        jobs_router,
        field_router,
        stream_router,
        audit_router,
        preflight_router,
        overview_router,
    )
    for included in routers:
        app.include_router(included)  # without a prefix: each route's own path is its full path
    app.add_middleware(BodyLimit, max_bytes=state.settings.max_body_bytes, streams=_streams)
    # the token before any body is read or parsed; inside the audit trail, which records its
    # 403s (a known caller) and leaves its 401s out
    app.add_middleware(Authenticate, routes=[route for r in routers for route in r.routes])
    app.add_middleware(AuditTrail, tally=tally)  # it also records what BodyLimit refuses
    # Outermost, outside even FastAPI's own middleware: the common infer request is answered
    # before anything else looks at it (fast_infer.py).
    return FastInfer(app, state)


def _streams(path: str) -> bool:
    """Routes that read their own (large) bodies with their own bound."""
    return path.startswith(("/v1/uploads/", "/v1/datasets/")) or (
        path.startswith("/v1/models/") and path.endswith("/infer")
    )


def _writing_counts_at_stop(lifespan: Lifespan | None, tally: RefusalTally, state: AgentState) -> Lifespan:
    """`lifespan`, then the refusals counted in windows still open are written down."""

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with lifespan(app) if lifespan else contextlib.nullcontext():
                yield
        finally:
            try:
                await asyncio.to_thread(write_counts, state, tally.drain())
            except sqlite3.Error as exc:
                log.error("audit counts of refusals not stored at stop: %s", exc)

    return run
