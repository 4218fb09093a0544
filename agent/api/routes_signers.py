"""The app keys this kit trusts to sign bundles (issue 22). Each handler's docstring lists its
status codes. An operator may change them: the same token can deploy models and queue jobs
directly, which is what a bundle signed by a trusted key does."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from agent.api.auth import require
from agent.api.state import AgentState
from agent.audit import Actor, AuditLog
from agent.auth.tokens import Caller
from agent.bundles.signers import Signer, TrustedSigners, parse_public_key
from agent.wire import error_responses
from agent.wire.signers import SignerInfo, SignerTrust

signers_router = APIRouter(tags=["bundles"])
Operator = Annotated[Caller, Depends(require("operator"))]


def _signers(request: Request) -> TrustedSigners:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return TrustedSigners(state.db, AuditLog.of(state.db, state.settings))


def _info(signer: Signer) -> SignerInfo:
    return SignerInfo(
        key_id=signer.key_id,
        public_key=base64.b64encode(signer.public_key).decode(),
        label=signer.label,
        source=signer.source,
        added_at=signer.added_at,
        revoked_at=signer.revoked_at,
    )


@signers_router.get("/v1/signers", response_model=list[SignerInfo], responses=error_responses(401, 403))
def list_signers(request: Request, _: Operator) -> list[SignerInfo]:
    """Every signer key the kit knows, revoked ones too. 200; 401; 403."""
    return [_info(s) for s in _signers(request).all()]


@signers_router.post(
    "/v1/signers", response_model=list[SignerInfo], responses=error_responses(400, 401, 403, 404, 413, 422)
)
def trust_signer(request: Request, body: SignerTrust, caller: Operator) -> list[SignerInfo]:
    """Trust `public_key` and revoke the key ids in `revoke` (a rotation), each audited; answers
    every signer. 200; 400 not JSON; 401; 403; 404 an unknown key id to revoke; 413; 422 not a key."""
    signers, actor = _signers(request), Actor(caller.token_id, caller.label)
    new = signers.trust(parse_public_key(body.public_key), body.label, "rotation", actor)
    for key_id in body.revoke:
        if key_id != new.key_id:
            signers.revoke(key_id, actor)
    return [_info(s) for s in signers.all()]


def trust_at_adoption(state: AgentState, public_key: str, label: str, token_id: str) -> None:
    """Trust the adopting app's signing key, audited as the new token's act."""
    signers = TrustedSigners(state.db, AuditLog.of(state.db, state.settings))
    signers.trust(parse_public_key(public_key), label, "adoption", Actor(token_id, label))
