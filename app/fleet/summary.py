"""One-line summaries of a kit's facts, shared by the CLI, the report and the window."""

from __future__ import annotations

from typing import TypeVar

from agent.wire import FactFamilies, FactFamily, Int8Advice

__all__ = [
    "accelerators",
    "cpu_model",
    "cpu_name",
    "gib",
    "int8_advice",
    "int8_support",
    "logical_cores",
    "memory_gib",
    "os_name",
    "readable",
    "size",
]

GIB = 1 << 30
F = TypeVar("F", bound=FactFamily)


def readable(family: F | None) -> F | None:
    """A fact family when the kit could read it, else None."""
    return family if family is not None and family.available else None


def accelerators(families: FactFamilies | None) -> str:
    found = readable(families.accelerators if families else None)
    if found is None:
        return ""
    names = [str(d.name or d.kind or "device") for d in found.devices or []]
    return ", ".join(names) if names else "none (CPU only)"


def cpu_name(families: FactFamilies | None) -> str:
    cpu = readable(families.cpu if families else None)
    return (cpu.model if cpu else None) or ""


def cpu_model(families: FactFamilies | None) -> str:
    model = cpu_name(families)
    cores = logical_cores(families)
    return f"{model} ({cores} threads)" if model and cores else model


def logical_cores(families: FactFamilies | None) -> int | None:
    cpu = readable(families.cpu if families else None)
    return cpu.logical_cores if cpu else None


def memory_gib(families: FactFamilies | None) -> float | None:
    memory = readable(families.memory if families else None)
    total = memory.total_bytes if memory else None
    return total / GIB if total is not None else None


def int8_advice(families: FactFamilies | None) -> str:
    cpu = readable(families.cpu if families else None)
    advice = cpu.int8 if cpu else None
    return int8_support(advice) if advice is not None else ""


def int8_support(advice: Int8Advice) -> str:
    """What the CPU has for INT8, not a verdict on speed: that takes a measurement."""
    if advice.recommended:
        return f"int8 dot-product ({advice.via})" if advice.via else "int8 dot-product"
    return "no int8 dot-product"


def os_name(families: FactFamilies | None) -> str:
    system = readable(families.system if families else None)
    return (system.os if system else None) or ""


def gib(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value / GIB:.{digits}f} GiB"


def size(value: float) -> str:
    """Bytes in the largest binary unit that keeps one digit before the point: "15.6 GiB"."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"
