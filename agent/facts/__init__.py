"""Hardware and software facts of this kit, one collector module per family.

Every collector returns its family's model from the wire contract (`agent.wire.CpuFacts`, ...),
with every field set, so the JSON a kit sends lists each fact even when its value is unknown.
When a source is missing or a collector fails the family says `available: False` and gives a
`reason`, so the app can show what could not be read instead of losing the whole answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.wire import (
    AcceleratorsFacts,
    CpuFacts,
    DisksFacts,
    FactFamilies,
    FactFamily,
    MemoryFacts,
    NetworkFacts,
    PowerFacts,
    RuntimeFacts,
    SystemFacts,
    ThermalFacts,
)

from . import accelerators, cpu, disks, memory, network, power, runtime, system, thermal
from ._common import unavailable

__all__ = ["FAMILIES", "collect_all", "collect_family"]

_log = logging.getLogger(__name__)

# Each entry looks its module's `collect` up at call time, so tests can replace one.
_COLLECTORS: dict[str, tuple[type[FactFamily], Callable[[Path | None], FactFamily]]] = {
    "cpu": (CpuFacts, lambda _: cpu.collect()),
    "memory": (MemoryFacts, lambda _: memory.collect()),
    "disks": (DisksFacts, lambda data_dir: disks.collect(data_dir=data_dir)),
    "accelerators": (AcceleratorsFacts, lambda _: accelerators.collect()),
    "runtime": (RuntimeFacts, lambda _: runtime.collect()),
    "system": (SystemFacts, lambda _: system.collect()),
    "network": (NetworkFacts, lambda _: network.collect()),
    "power": (PowerFacts, lambda _: power.collect()),
    "thermal": (ThermalFacts, lambda _: thermal.collect()),
}

FAMILIES: tuple[str, ...] = tuple(_COLLECTORS)


def collect_family(name: str, data_dir: Path | None = None) -> FactFamily:
    """Collect one family; never raises, a failure becomes `available: False` with a reason."""
    if name not in _COLLECTORS:
        return unavailable(FactFamily, f"unknown fact family {name!r}; known: {', '.join(FAMILIES)}")
    family, collector = _COLLECTORS[name]
    try:
        return collector(data_dir)
    except Exception as exc:  # one broken source must not hide the other families
        _log.warning("collecting %s facts failed", name, exc_info=True)
        return unavailable(family, f"{type(exc).__name__}: {exc}")


def collect_all(data_dir: Path | None = None) -> FactFamilies:
    """Collect every family, in FAMILIES order."""
    return FactFamilies.model_validate({name: collect_family(name, data_dir) for name in FAMILIES})
