"""A kit's hardware facts and metric samples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Facts", "MetricSample", "Metrics"]


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
    seq: int | None = Field(
        default=None,
        description="the ring's sequence number: a clock that "
        "jumps back does not reorder it; ask for more with since_seq",
    )
    disk_free_bytes: int | None = Field(default=None, description="free where the agent keeps models")
    battery_percent: float | None = Field(default=None, description="None when the kit has no battery")


class Metrics(BaseModel):
    device_id: str
    interval_s: float
    samples: list[MetricSample]
    overwritten: int = Field(
        default=0,
        description="samples the ring dropped to stay within its "
        "capacity since its first: an app that last pulled before the oldest "
        "held seq missed the difference",
    )
