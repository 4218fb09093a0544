"""What every answer shares: the API version, scopes, error bodies, health and the mDNS record."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agent.toolkit.version import VERSION
from agent.wire.base import WireModel

__all__ = [
    "API_VERSION",
    "HEALTH_PATH",
    "MAX_INT64",
    "PACKAGE_VERSION",
    "SCOPES",
    "SERVICE_TYPE",
    "DbRecovered",
    "ErrorBody",
    "Health",
    "Scope",
    "TxtRecord",
    "error_responses",
]


PACKAGE_VERSION = VERSION


API_VERSION = "1"


SERVICE_TYPE = "_kitfleet._tcp.local."


HEALTH_PATH = "/v1/health"


# How long an agent waits, by default, for the next request on an open connection before it
# closes it (its slowloris deadline, the agent setting `http_header_timeout_s`; its HTTP
# keep-alive is longer). A client keeps an idle connection for less, so it never sends a
# request on a connection the agent is closing at that moment.
IDLE_CLOSE_S = 10.0


Scope = Literal["viewer", "operator", "admin"]


SCOPES: tuple[Scope, ...] = ("viewer", "operator", "admin")


class ErrorBody(WireModel):
    """Every 4xx answer: what went wrong and how to fix it."""

    error: str = Field(description="Machine-readable error code")
    message: str = Field(description="What was wrong, in words a technician can act on")
    hint: str | None = Field(default=None, description="How to fix it")


MAX_INT64 = (1 << 63) - 1  # the kit stores numbers in SQLite: bigger ones are refused with 422


_REFUSALS = {
    400: "the body is not valid JSON, or is empty",
    401: "no bearer token, or an unknown or revoked one",
    403: "the token's scope is too low, or the pairing proof is wrong, used or expired",
    404: "no such model, upload, job, dataset, schedule or token",
    409: "the request conflicts with the current state",
    413: "the body is too large",
    415: "the body's type is not supported",
    422: "a field, parameter or header is invalid: the message names it",
    429: "too many at once; try again later",
    503: "a part of the kit this needs is missing or off (e.g. no systemd-timedated)",
    507: "the kit's disk is too full",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's refusals: each one answers an ErrorBody."""
    return {code: {"model": ErrorBody, "description": _REFUSALS[code]} for code in codes}


class DbRecovered(WireModel):
    """This start found the kit's database damaged, kept it aside and began a fresh one."""

    quarantined: str = Field(description="the damaged file's new name in the data dir")
    reason: str
    at: float
    lost: list[str]


class Health(WireModel):
    status: Literal["ok"]
    version: str
    api_version: str
    device_id: str
    recovered: DbRecovered | None = None


class TxtRecord(WireModel):
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
