"""One-line summaries of a kit's facts, shared by the CLI, the report and the window."""

from __future__ import annotations

from typing import Any

__all__ = ["accelerators", "cpu_model", "family", "gib", "int8_advice", "memory_gib", "os_name"]

GIB = 1 << 30


def family(families: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """A fact family when it could be read, else empty."""
    value = (families or {}).get(name)
    return value if isinstance(value, dict) and value.get("available", True) else {}


def accelerators(families: dict[str, Any] | None) -> str:
    found = family(families, "accelerators")
    if not found:
        return ""
    names = [str(d.get("name") or d.get("kind") or "device") for d in found.get("devices", [])]
    return ", ".join(names) if names else "none (CPU only)"


def cpu_model(families: dict[str, Any] | None) -> str:
    cpu = family(families, "cpu")
    model = str(cpu.get("model") or "")
    cores = cpu.get("logical_cores")
    return f"{model} ({cores} threads)" if model and cores else model


def memory_gib(families: dict[str, Any] | None) -> float | None:
    total = family(families, "memory").get("total_bytes")
    return total / GIB if isinstance(total, (int, float)) else None


def int8_advice(families: dict[str, Any] | None) -> str:
    advice = family(families, "cpu").get("int8")
    if not isinstance(advice, dict):
        return ""
    if advice.get("recommended"):
        return f"recommended ({advice['via']})" if advice.get("via") else "recommended"
    return "not recommended"


def os_name(families: dict[str, Any] | None) -> str:
    system = family(families, "system")
    return str(system.get("os_pretty") or system.get("os") or system.get("platform") or "")


def gib(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value / GIB:.{digits}f} GiB"
