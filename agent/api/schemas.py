"""The wire contract between the app and the agent.

This is the only module the app may import from `agent`. It must stay free of
server code: pydantic models, constants and small pure helpers only.
"""

from __future__ import annotations

import hashlib
import hmac
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, Field

try:
    PACKAGE_VERSION = metadata.version("kitfleet")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    PACKAGE_VERSION = "0.0.0+source"

API_VERSION = "1"
SERVICE_TYPE = "_kitfleet._tcp.local."
HEALTH_PATH = "/v1/health"

Scope = Literal["viewer", "operator", "admin"]
SCOPES: tuple[Scope, ...] = ("viewer", "operator", "admin")

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
    return hashlib.scrypt(
        normalise_pair_code(code).encode(), salt=device_id.encode(), **_SCRYPT
    )


def pair_proof(key: bytes, device_id: str, app_id: str, nonce: str) -> str:
    """The HMAC an app sends to prove it knows the code for this device."""
    message = f"kitfleet-pair-v1|{device_id}|{app_id}|{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def device_id_from_der(der: bytes) -> str:
    """Device ID = SHA-256 of the DER certificate, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def format_device_id(device_id: str, groups: int = 4) -> str:
    """Show a device ID the way people read it: `7QXM-2K4D-...` style groups."""
    short = device_id[: groups * 4].upper()
    return "-".join(short[i : i + 4] for i in range(0, len(short), 4))


class ErrorBody(BaseModel):
    """Every 4xx answer: what went wrong and how to fix it."""

    error: str = Field(description="Machine-readable error code")
    message: str = Field(description="What was wrong, in words a technician can act on")
    hint: str | None = Field(default=None, description="How to fix it")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    api_version: str
    device_id: str


class PairRequest(BaseModel):
    app_id: str = Field(min_length=8, max_length=128)
    app_name: str = Field(default="kitfleet", max_length=128)
    nonce: str = Field(min_length=16, max_length=128)
    proof: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    scope: Scope = "admin"


class PairResponse(BaseModel):
    device_id: str
    name: str
    token: str
    token_id: str
    scope: Scope


class TokenInfo(BaseModel):
    token_id: str
    label: str
    scope: Scope
    created_at: float
    last_used_at: float | None
    revoked: bool


class Facts(BaseModel):
    """Hardware and software facts: one entry per family, each a plain mapping.

    A family whose source is missing still appears, with `available: false`
    and a `reason`, so the app can show what could not be read.
    """

    device_id: str
    name: str
    collected_at: float
    families: dict[str, dict[str, Any]]


class MetricSample(BaseModel):
    ts: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    temperature_c: float | None = None


class Metrics(BaseModel):
    device_id: str
    interval_s: float
    samples: list[MetricSample]


class TxtRecord(BaseModel):
    """What an agent announces over mDNS. A hint only: identity is the pinned key."""

    device_id: str
    name: str
    kit_model: str = ""
    api_version: str = API_VERSION
    agent_version: str = ""

    def to_properties(self) -> dict[str, str]:
        return {
            "id": self.device_id,
            "name": self.name,
            "model": self.kit_model,
            "api": self.api_version,
            "ver": self.agent_version,
        }

    @classmethod
    def from_properties(cls, props: dict[bytes, bytes | None]) -> TxtRecord:
        def get(key: str) -> str:
            value = props.get(key.encode())
            return value.decode("utf-8", "replace") if value else ""

        return cls(
            device_id=get("id"),
            name=get("name"),
            kit_model=get("model"),
            api_version=get("api"),
            agent_version=get("ver"),
        )
