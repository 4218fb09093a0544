"""Pairing: the code stretched with scrypt and bound to the kit's certificate, the proofs both ways,
and the token it gives."""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import Field

from agent.wire.base import WireModel
from agent.wire.common import Scope
from agent.wire.text import PlainText

__all__ = [
    "PAIR_CODE_ALPHABET",
    "PAIR_CODE_LENGTH",
    "PairRequest",
    "PairResponse",
    "TokenInfo",
    "device_id_from_der",
    "format_device_id",
    "normalise_pair_code",
    "pair_confirm",
    "pair_key",
    "pair_proof",
]


# Pairing: the code is stretched with scrypt, salted with the device ID the app
# sees in the TLS certificate. A proof made against a different certificate
# (a man in the middle) never verifies on the real kit, and the stretching makes
# brute-forcing a captured proof within the code's lifetime impractical.
PAIR_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read off a label


PAIR_CODE_LENGTH = 8


_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def normalise_pair_code(code: str) -> str:
    """Upper-case the code and drop separators a technician may type."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def pair_key(code: str, device_id: str) -> bytes:
    """Derive the pairing key from a code and the device ID it is bound to."""
    return hashlib.scrypt(normalise_pair_code(code).encode(), salt=device_id.encode(), **_SCRYPT)


def pair_proof(
    key: bytes, device_id: str, app_id: str, nonce: str, signer_public_key: str | None = None
) -> str:
    """The HMAC an app sends to prove it knows the code for this device.

    With the app's bundle-signing key it covers that key too (v2, JSON-encoded fields), so a key
    swapped on the way never verifies and the kit never trusts a stranger's bundles; without one
    it is the v1 proof older apps send."""
    if signer_public_key is None:
        message = f"kitfleet-pair-v1|{device_id}|{app_id}|{nonce}".encode()
    else:
        fields = ["kitfleet-pair-v2", device_id, app_id, nonce, signer_public_key]
        message = json.dumps(fields).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pair_confirm(
    key: bytes,
    device_id: str,
    app_id: str,
    app_nonce: str,
    kit_nonce: str,
    token_id: str,
    scope: str,
    token: str,
) -> str:
    """The HMAC a kit sends back to prove it knows the code too, over everything the app will
    keep. Its own label keeps it apart from the app's proof, so echoing that proves nothing; the
    fields are JSON-encoded, so no two different answers share a message."""
    fields = ["kitfleet-pair-confirm-v1", device_id, app_id, app_nonce, kit_nonce, token_id, scope, token]
    return hmac.new(key, json.dumps(fields).encode(), hashlib.sha256).hexdigest()


def device_id_from_der(der: bytes) -> str:
    """Device ID = SHA-256 of the DER certificate, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def format_device_id(device_id: str, groups: int = 4) -> str:
    """Show a device ID the way people read it: `7QXM-2K4D-...` style groups."""
    short = device_id[: groups * 4].upper()
    return "-".join(short[i : i + 4] for i in range(0, len(short), 4))


SIGNER_KEY_PATTERN = "^[A-Za-z0-9+/]{43}=$"  # base64 of a raw Ed25519 public key


class PairRequest(WireModel):
    app_id: PlainText = Field(min_length=8, max_length=128)
    app_name: PlainText = Field(
        default="kitfleet", max_length=128, description="shown as the token's label and the audit log's actor"
    )
    nonce: str = Field(min_length=16, max_length=128)
    proof: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    scope: Scope = Field(
        default="operator",
        description="what the token may do; admin only when asked for (command jobs, tokens, the audit log)",
    )
    signer_public_key: str | None = Field(
        default=None,
        pattern=SIGNER_KEY_PATTERN,
        description="the app's Ed25519 bundle-signing key (base64 of its 32 bytes): the kit trusts "
        "bundles it signs; the proof must cover it (pair_proof's v2)",
    )


class PairResponse(WireModel):
    device_id: str
    name: str
    token: str
    token_id: str
    scope: Scope
    # The kit's proof that it knows the code too, checked by the app before it keeps anything.
    # Empty from a kit older than that check (or from a rogue): the app refuses both.
    kit_nonce: str = Field(default="", description="the kit's own nonce")
    confirm: str = Field(
        default="",
        description="pair_confirm(pair key, device ID, app ID, app "
        "nonce, kit nonce, token ID, scope, token), lower-case hex",
    )


class TokenInfo(WireModel):
    token_id: str
    label: str
    scope: Scope
    created_at: float
    last_used_at: float | None
    revoked: bool
