"""The agent's /v1 routes. Each handler's docstring lists its status codes."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from agent import __version__
from agent.api.auth import require
from agent.api.routes_signers import signers_router, trust_at_adoption
from agent.api.state import AgentState
from agent.auth import pairing
from agent.auth.tokens import Caller
from agent.errors import ApiError
from agent.facts import collect_all
from agent.metrics import prometheus
from agent.wire import (
    API_VERSION,
    MAX_INT64,
    DbRecovered,
    FactFamilies,
    Facts,
    Health,
    KitFacts,
    Metrics,
    PairRequest,
    PairResponse,
    TokenInfo,
    error_responses,
)

router = APIRouter()
router.include_router(signers_router)  # kept beside pairing, where a kit learns its first signer
Viewer = Annotated[Caller, Depends(require("viewer"))]
Admin = Annotated[Caller, Depends(require("admin"))]


def _state(request: Request) -> AgentState:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return state


@router.get("/v1/health", response_model=Health, tags=["public"])
async def health(request: Request) -> Health:
    """Liveness and identity, without authentication. 200. (Async: it does no I/O, so it needs no
    thread-pool hop; fleet polling calls it often.)"""
    return health_of(_state(request))


def health_of(state: AgentState) -> Health:
    lost = state.db.recovery
    recovered = (
        None
        if lost is None
        else DbRecovered(quarantined=lost.quarantined, reason=lost.reason, at=lost.at, lost=list(lost.lost))
    )
    return Health(
        status="ok",
        version=__version__,
        api_version=API_VERSION,
        device_id=state.identity.device_id,
        recovered=recovered,
    )


@router.post(
    "/v1/pair",
    response_model=PairResponse,
    tags=["public"],
    responses=error_responses(400, 403, 413, 422, 429),
)
def pair(request: Request, body: PairRequest) -> PairResponse:
    """Trade proof of the pairing code for a token, and prove the code back (`confirm`). 200;
    403 wrong/used/expired; 429 locked, for the caller's address or for everyone."""
    state = _state(request)
    device_id = state.identity.device_id
    # The connection's own peer: proxy headers are off, so X-Forwarded-For cannot pick whom
    # wrong proofs are counted against.
    client = request.client.host if request.client else ""
    key = pairing.verify(state.db, device_id, body, client)
    token_id, secret = state.tokens.issue(f"{body.app_name} ({body.app_id})", body.scope)
    if body.signer_public_key:  # the app's bundle-signing key, learnt as the code is proven
        trust_at_adoption(state, body.signer_public_key, f"{body.app_name} ({body.app_id})", token_id)
    kit_nonce, confirm = pairing.confirmation(key, device_id, body, token_id, body.scope, secret)
    return PairResponse(
        device_id=device_id,
        name=state.settings.name,
        token=secret,
        token_id=token_id,
        scope=body.scope,
        kit_nonce=kit_nonce,
        confirm=confirm,
    )


# exclude_unset: each family carries the fields its collector set, as older apps read them.
@router.get(
    "/v1/facts", response_model=Facts, response_model_exclude_unset=True, responses=error_responses(401)
)
def facts(request: Request, _: Viewer) -> Facts:
    """Hardware and software facts, one entry per family. 200; 401."""
    state = _state(request)
    return Facts(
        device_id=state.identity.device_id,
        name=state.settings.name,
        collected_at=time.time(),
        families=_facts_with_kit(state),
    )


def _facts_with_kit(state: AgentState) -> FactFamilies:
    families = collect_all(state.settings.data_dir)
    identity = families.system.kit if families.system else None
    families.kit = KitFacts(
        available=True,
        name=state.settings.name,
        kit_model=state.settings.kit_model or (identity.model if identity else None) or "",
    )
    return families


@router.get("/v1/metrics", response_model=Metrics, responses=error_responses(401, 422))
def metrics(
    request: Request,
    _: Viewer,
    since: Annotated[float, Query(ge=0, description="Unix time; samples after it")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    since_seq: Annotated[
        int | None, Query(ge=-1, le=MAX_INT64, description="samples after this seq; overrides since")
    ] = None,
) -> Metrics:
    """Samples from the on-disk ring newer than `since` (or after `since_seq`), oldest first,
    where each model's infer requests spent their time, and each model version's infer requests
    by outcome. 200; 401; 422."""
    state = _state(request)
    return Metrics(
        device_id=state.identity.device_id,
        interval_s=state.settings.metrics_interval_s,
        samples=state.metrics.since(since, limit, since_seq),
        overwritten=state.metrics.overwritten(),
        infer=state.infer.times.snapshot(),
        infer_counts=state.infer.counts.snapshot(),
        infer_counts_since=state.infer.counts.since,
    )


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(401))
def prometheus_metrics(request: Request, _: Viewer) -> str:
    """The latest sample in Prometheus text format, the infer batcher's counts, where infer
    requests spent their time and their outcomes per model version. 200; 401."""
    state = _state(request)
    return prometheus.render(
        state.metrics.latest(),
        state.identity.device_id,
        __version__,
        state.infer.batch_counts(),
        state.infer.times.snapshot(),
        state.infer.counts.snapshot(),
    )


@router.get("/v1/tokens", response_model=list[TokenInfo], responses=error_responses(401, 403))
def list_tokens(request: Request, _: Admin) -> list[TokenInfo]:
    """Every token issued by this kit (secrets are never shown). 200; 401; 403."""
    return _state(request).tokens.list()


@router.delete("/v1/tokens/{token_id}", status_code=204, responses=error_responses(401, 403, 404))
def revoke_token(request: Request, token_id: str, _: Admin) -> None:
    """Revoke a token; calls with it fail from now on. 204; 401; 403; 404."""
    if not _state(request).tokens.revoke(token_id):
        raise ApiError(
            404,
            "token_not_found",
            f"no active token with id {token_id!r}",
            "it may be revoked already; `kitfleet audit KIT` shows who did what on the kit",
        )


@router.get("/v1/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Viewer) -> dict[str, Any]:
    """This API's OpenAPI document. 200; 401."""
    document = request.app.openapi()
    assert isinstance(document, dict)
    return document
