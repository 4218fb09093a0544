"""Build the agent's ASGI application."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from agent import __version__
from agent.api.audit_trail import AuditTrail
from agent.api.errors import BodyLimit, install_handlers
from agent.api.fast_infer import FastInfer
from agent.api.routes import router
from agent.api.routes_audit import audit_router
from agent.api.routes_jobs import jobs_router
from agent.api.routes_models import models_router
from agent.api.routes_stream import stream_router
from agent.api.state import AgentState

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(state: AgentState, lifespan: Lifespan | None = None) -> FastInfer:
    app = FastAPI(
        title="kitfleet-agent",
        version=__version__,
        description="The API of a kitfleet kit. Every route but /v1/health and /v1/pair "
        "needs `Authorization: Bearer <token>`.",
        openapi_url=None, docs_url=None, redoc_url=None,  # served behind auth instead
        lifespan=lifespan,
    )
    app.state.agent = state
    install_handlers(app)
    app.include_router(router)
    app.include_router(models_router)
    app.include_router(jobs_router)
    app.include_router(stream_router)
    app.include_router(audit_router)
    app.add_middleware(BodyLimit, max_bytes=state.settings.max_body_bytes, streams=_streams)
    app.add_middleware(AuditTrail)  # it also records what BodyLimit refuses
    # Outermost, outside even FastAPI's own middleware: the common infer request is answered
    # before anything else looks at it (fast_infer.py).
    return FastInfer(app, state)



def _streams(path: str) -> bool:
    """Routes that read their own (large) bodies with their own bound."""
    return path.startswith(("/v1/uploads/", "/v1/datasets/")) or (path.startswith("/v1/models/")
                                                                   and path.endswith("/infer"))
