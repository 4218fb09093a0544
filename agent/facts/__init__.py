"""Hardware and software facts of this kit, one collector module per family.

Every family maps to a plain, JSON-serialisable dict with `available`; when a source is
missing or a collector fails it says `available: False` and gives a `reason`, so the app can
show what could not be read instead of losing the whole answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import accelerators, cpu, disks, memory, network, power, runtime, system, thermal
from ._common import unavailable

__all__ = ["FAMILIES", "collect_all", "collect_family"]

_log = logging.getLogger(__name__)

# Each entry looks its module's `collect` up at call time, so tests can replace one.
_COLLECTORS: dict[str, Callable[[Path | None], dict[str, Any]]] = {
    "cpu": lambda _: cpu.collect(),
    "memory": lambda _: memory.collect(),
    "disks": lambda data_dir: disks.collect(data_dir=data_dir),
    "accelerators": lambda _: accelerators.collect(),
    "runtime": lambda _: runtime.collect(),
    "system": lambda _: system.collect(),
    "network": lambda _: network.collect(),
    "power": lambda _: power.collect(),
    "thermal": lambda _: thermal.collect(),
}

FAMILIES: tuple[str, ...] = tuple(_COLLECTORS)


def collect_family(name: str, data_dir: Path | None = None) -> dict[str, Any]:
    """Collect one family; never raises, a failure becomes `available: False` with a reason."""
    collector = _COLLECTORS.get(name)
    if collector is None:
        return unavailable(f"unknown fact family {name!r}; known: {', '.join(FAMILIES)}")
    try:
        return collector(data_dir)
    except Exception as exc:  # one broken source must not hide the other families
        _log.warning("collecting %s facts failed", name, exc_info=True)
        return unavailable(f"{type(exc).__name__}: {exc}")


def collect_all(data_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Collect every family, keyed by family name in FAMILIES order."""
    return {name: collect_family(name, data_dir) for name in FAMILIES}
