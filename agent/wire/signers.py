"""The app keys a kit trusts to sign bundles (issue 22), as `GET/POST /v1/signers` carry them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agent.wire.base import WireModel
from agent.wire.pairing import SIGNER_KEY_PATTERN

__all__ = ["KeyId", "SignerInfo", "SignerTrust"]

KeyId = Annotated[str, Field(pattern="^[0-9a-f]{16}$")]


class SignerInfo(WireModel):
    key_id: str
    public_key: str = Field(description="base64 of the raw Ed25519 public key")
    label: str
    source: str = Field(description="adoption, provision, rotation or cli")
    added_at: float
    revoked_at: float | None


class SignerTrust(WireModel):
    """Trust a new app key (a rotation) and revoke old ones in the same call."""

    public_key: str = Field(pattern=SIGNER_KEY_PATTERN)
    label: str = Field(default="kitfleet", max_length=200)
    revoke: list[KeyId] = Field(
        default_factory=list, max_length=16, description="key ids this kit should stop trusting"
    )
