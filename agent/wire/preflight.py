"""Pre-flight readiness: one answer per kit, ready or not and why, check by check."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from agent.wire.base import WireModel

__all__ = [
    "PREFLIGHT_STATUSES",
    "CheckStatus",
    "ClockSetAnswer",
    "ClockSetRequest",
    "PreflightAnswer",
    "PreflightCheck",
    "PreflightRequest",
    "worst_status",
]

CheckStatus = Literal["pass", "warn", "fail"]
PREFLIGHT_STATUSES: tuple[CheckStatus, ...] = ("pass", "warn", "fail")


class PreflightCheck(WireModel):
    """One check: how it went, in words, and the one thing that fixes it."""

    id: str = Field(max_length=64, description="stable name: disk, thermal, battery, model:NAME, …")
    status: CheckStatus
    message: str = Field(max_length=2000, description="what was found")
    action: str = Field(
        default="",
        max_length=1000,
        description="the one command or window action that fixes it; empty on pass",
    )


class PreflightRequest(WireModel):
    """What the mission plans to put on the kit, so the kit can say whether it has room."""

    model_config = ConfigDict(extra="forbid")

    for_model_bytes: int = Field(default=0, ge=0, le=1 << 50, description="size of a model to be deployed")
    dataset_bytes: int = Field(default=0, ge=0, le=1 << 50, description="datasets planned, in bytes")
    providers: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="execution providers the mission needs (e.g. CUDAExecutionProvider); "
        "empty = the best the kit has",
    )
    verify_models: bool = Field(default=True, description="re-run sha256 and golden checks of serving models")


class PreflightAnswer(WireModel):
    checks: list[PreflightCheck]
    ready: bool = Field(description="no check failed")
    kit_time: float = Field(description="the kit's clock when it answered, Unix time")
    agent_version: str
    device_id: str


def worst_status(statuses: list[CheckStatus]) -> CheckStatus:
    """fail over warn over pass; pass when there is nothing."""
    return max(statuses, key=PREFLIGHT_STATUSES.index, default="pass")


class ClockSetRequest(WireModel):
    """Set the kit's clock to the laptop's, read just before sending (transit on a LAN is ms)."""

    model_config = ConfigDict(extra="forbid")

    time: float = Field(
        ge=1_700_000_000, le=4_102_444_800, description="the laptop's clock, Unix time (UTC), 2023-2100"
    )


class ClockSetAnswer(WireModel):
    before: float = Field(description="the kit's clock before, Unix time")
    after: float = Field(description="the kit's clock after, Unix time")
    adjusted_s: float = Field(description="how far it moved, seconds (negative: set back)")
    via: str = Field(description="how: timedated, or test-offset in tests")
