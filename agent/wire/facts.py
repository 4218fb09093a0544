"""A kit's hardware facts and metric samples."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, ValidationError, model_validator

from agent.wire.base import WireModel
from agent.wire.facts_families import (
    AcceleratorsFacts,
    CpuFacts,
    DisksFacts,
    FactRecord,
    KitFacts,
    MemoryFacts,
    NetworkFacts,
    PowerFacts,
    ProviderPrecision,
    RuntimeFacts,
    SystemFacts,
    ThermalFacts,
)
from agent.wire.facts_precision import favoured_precisions
from agent.wire.timings import InferCounts, InferTimings

__all__ = ["FactFamilies", "Facts", "MetricSample", "Metrics"]


class FactFamilies(FactRecord):
    """Every family a kit reported; one the kit did not send is None, an unknown one is kept
    as a plain mapping (`model_extra`) for a newer kit's families. A family in a form this
    version cannot read (a newer kit's, an odd inventory row) arrives unavailable, saying why:
    one unreadable family never hides the others."""

    cpu: CpuFacts | None = None
    memory: MemoryFacts | None = None
    disks: DisksFacts | None = None
    accelerators: AcceleratorsFacts | None = None
    runtime: RuntimeFacts | None = None
    system: SystemFacts | None = None
    network: NetworkFacts | None = None
    power: PowerFacts | None = None
    thermal: ThermalFacts | None = None
    kit: KitFacts | None = Field(default=None, description="the name and kit model the agent is set up with")

    @model_validator(mode="wrap")
    @classmethod
    def _each_family_alone(cls, data: Any, handler: ModelWrapValidatorHandler[FactFamilies]) -> FactFamilies:
        try:
            return handler(data)
        except ValidationError:
            if not isinstance(data, dict):
                raise
            return handler({name: _readable(handler, name, value) for name, value in data.items()})

    def precision_by_provider(self) -> list[ProviderPrecision]:
        """The precision each execution provider favours: as the kit said, or, from a kit too
        old to say, by the same rule from its providers and CPU facts."""
        runtime = self.runtime
        if runtime is None or not runtime.available:
            return []
        if runtime.precision_by_provider is not None:
            return runtime.precision_by_provider
        return favoured_precisions(runtime.providers or [], self.cpu.int8 if self.cpu else None)


def _readable(handler: ModelWrapValidatorHandler[FactFamilies], name: str, value: object) -> object:
    """The family as sent, or an unavailable family saying what this version could not read."""
    try:
        handler({name: value})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"][1:]) or name
        return {
            "available": False,
            "reason": f"sent in a form this version of kitfleet cannot read ({where}: {problem['msg']}); "
            "update the app or the kit's agent (`kitfleet provision`) so both run the same version",
        }
    return value


class Facts(WireModel):
    """Hardware and software facts: one entry per family.

    A family whose source is missing still appears, with `available: false`
    and a `reason`, so the app can show what could not be read. Send it with
    `exclude_unset` so each family carries what its collector set, as before.
    """

    device_id: str
    name: str
    collected_at: float = Field(description="when the kit read them, Unix epoch seconds")
    families: FactFamilies


class MetricSample(WireModel):
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
    power_w: float | None = Field(
        default=None,
        description="average watts drawn over the interval, measured (RAPL, NVML or battery "
        "discharge); None where the kit cannot measure",
    )


class Metrics(WireModel):
    device_id: str
    interval_s: float
    samples: list[MetricSample]
    overwritten: int = Field(
        default=0,
        description="samples the ring dropped to stay within its "
        "capacity since its first: an app that last pulled before the oldest "
        "held seq missed the difference",
    )
    infer: list[InferTimings] = Field(
        default_factory=list,
        description="where each model's infer requests spent their time since the agent started",
    )
    infer_counts: list[InferCounts] = Field(
        default_factory=list,
        description="each model version's infer requests by outcome (answered, refused, failed) since "
        "`infer_counts_since`",
    )
    infer_counts_since: float = Field(
        default=0.0,
        description="Unix time the counts started (the agent's start): a later one means it restarted",
    )
