"""`kitfleet facts` for a person: each fact in its unit (GiB, MHz, °C, W, local time and age).

The unit comes from the field's name in the wire contract (`total_bytes`, `current_c`,
`boot_time`, a `frequency_mhz` mapping), so a family a newer kit adds reads as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.wire import FactFamilies
from app.cli.common import age
from app.fleet import summary

__all__ = ["facts_lines", "int8_line", "precision_lines", "when"]

# Field-name endings that name a unit, longest first ("_mbps" before "_s"); times keep theirs
# in the label ("boot time"), the others show it in the value ("total 15.6 GiB").
_SUFFIXES = ("_bytes", "_percent", "_mbps", "_mhz", "_time", "_at", "_c", "_w", "_s")
_TIMES = ("_time", "_at")
_UNIT_OF_KEY = {"percent": "_percent", "secs_left": "_s"}
_LABELS = {"secs_left": "time left"}
# Shown in a block of their own above the families.
_SHOWN_ABOVE = {("runtime", "precision_by_provider")}
# Keys naming the items of a list, so "eth0: ..." shows rather than "[0]: ...".
_ITEM_NAMES = ("name", "mountpoint", "device", "address", "label", "provider", "sensor")


def facts_lines(families: FactFamilies) -> list[str]:
    """The INT8 verdict, the precision per execution provider, then every family."""
    lines = int8_line(families) + precision_lines(families)
    for name, values in families.wire().items():
        lines += _family_lines(name, values)
    return lines


def int8_line(families: FactFamilies) -> list[str]:
    """What a technician looks for before deploying: has this kit's CPU int8 dot-product instructions?
    (Whether INT8 is faster takes a measurement: `kitfleet quantize`, a benchmark job.)"""
    int8 = families.cpu.int8 if families.cpu else None
    if int8 is None:
        return []
    return [f"INT8 models: {summary.int8_support(int8)}. {int8.reason or ''}".rstrip()]


def precision_lines(families: FactFamilies) -> list[str]:
    """Which precision each ONNX Runtime execution provider on the kit runs fastest, and why."""
    favoured = families.precision_by_provider()
    if not favoured:
        return []
    width = max(len(p.provider or "") for p in favoured)
    rows = [
        f"  {p.provider or '?':<{width}}  {p.precision or '?':<4}  {p.reason or ''}".rstrip()
        for p in favoured
    ]
    return ["Precision each execution provider favours:", *rows]


def when(ts: float) -> str:
    """Local date and time, and how long ago: "2026-03-01 14:05 (3 min ago)"."""
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(ts))} ({age(ts)})"


def _family_lines(name: str, values: Any) -> list[str]:
    if not isinstance(values, Mapping):
        return [f"[{name}] {_value(name, values)}"]
    if values.get("available", True) is False:
        return [f"[{name}] not available: {values.get('reason') or 'no reason given'}"]
    shown = {k: v for k, v in values.items() if k != "available" and (name, k) not in _SHOWN_ABOVE}
    return [f"[{name}]", *_entries(shown, 1, "")]


def _entries(values: Mapping[str, Any], depth: int, unit: str) -> list[str]:
    lines: list[str] = []
    for key, value in values.items():
        lines += _entry(key, value, depth, _unit(key) or unit)
    return lines


def _entry(key: str, value: Any, depth: int, unit: str) -> list[str]:
    indent = "  " * depth
    label = _label(key)
    if isinstance(value, Mapping) and not _flat(value):
        return [f"{indent}{label}:", *_entries(value, depth + 1, unit)]
    if isinstance(value, Mapping):
        return [f"{indent}{label}: {_inline(value, unit)}"]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [f"{indent}{label}:", *(line for item in value for line in _list_item(item, depth + 1))]
    return [f"{indent}{label}: {_value(key, value, unit)}"]


def _list_item(item: Mapping[str, Any], depth: int) -> list[str]:
    """One line per item, "eth0: up yes, mtu 1500 B, ...", its nested parts below it."""
    name_key = next((k for k in _ITEM_NAMES if item.get(k)), None)
    rest = {k: v for k, v in item.items() if k != name_key}
    flat = {k: v for k, v in rest.items() if not _nested(v)}
    head = f"{'  ' * depth}{item[name_key] if name_key else '-'}"
    head += f": {_inline(flat, '')}" if flat else ""
    nested = {k: v for k, v in rest.items() if _nested(v)}
    return [head, *_entries(nested, depth + 1, "")]


def _inline(values: Mapping[str, Any], unit: str) -> str:
    """A mapping of plain values on one line; a set of flags as the names of those that are on."""
    if values and all(isinstance(v, bool) for v in values.values()):
        return ", ".join(k for k, v in values.items() if v) or "none"
    return ", ".join(f"{_label(k)} {_value(k, v, _unit(k) or unit)}" for k, v in values.items())


def _value(key: str, value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value(key, v, unit) for v in value) or "none"
    if isinstance(value, (int, float)):
        return _FORMATS.get(unit or _unit(key), _number)(float(value))
    return str(value)


def _number(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:g}"


def _duration(seconds: float) -> str:
    minutes, hours = int(seconds // 60) % 60, int(seconds // 3600)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds:.0f} s"


_FORMATS: dict[str, Callable[[float], str]] = {
    "_bytes": summary.size,
    "_percent": lambda v: f"{v:.0f} %",
    "_mbps": lambda v: f"{v:.0f} Mb/s",
    "_mhz": lambda v: f"{v:.0f} MHz",
    "_time": when,
    "_at": when,
    "_c": lambda v: f"{v:.1f} °C",
    "_w": lambda v: f"{v:.1f} W",
    "_s": _duration,
}


def _unit(key: str) -> str:
    return _UNIT_OF_KEY.get(key) or next((s for s in _SUFFIXES if key.endswith(s)), "")


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    suffix = _unit(key)
    keep = not key.endswith(suffix) or key == suffix.lstrip("_") or suffix in _TIMES
    return (key if keep else key.removesuffix(suffix)).replace("_", " ")


def _flat(values: Mapping[str, Any]) -> bool:
    return not any(_nested(v) for v in values.values())


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, list) and any(isinstance(v, Mapping) for v in value)
    )
