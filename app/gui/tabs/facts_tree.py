"""Turn a kit's fact families into tree items a technician can read."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QTreeWidgetItem

from agent.wire import FactFamilies
from app.fleet import summary

__all__ = ["FAMILY_LABELS", "family_items", "format_value"]

# The order a technician asks in: what computes, what stores, what runs, what surrounds it.
FAMILY_LABELS = {
    "cpu": "CPU",
    "memory": "Memory",
    "accelerators": "Accelerators",
    "disks": "Disks",
    "runtime": "Runtime",
    "system": "System",
    "network": "Network",
    "power": "Power",
    "thermal": "Thermal",
    "kit": "Kit",
}
_UNAVAILABLE = QColor("#6c757d")
# Keys naming the items of a list of mappings, so "eth0" shows rather than "[0]".
_ITEM_NAMES = ("name", "mountpoint", "device", "address", "label", "provider")
# Keys whose value sums a list item up beside its name (a provider's favoured precision).
_ITEM_VALUES = ("precision",)


def family_items(typed: FactFamilies) -> list[QTreeWidgetItem]:
    """One top-level item per family, known families first in a fixed order."""
    families = typed.wire()  # shown as the kit sent them, with any family newer than this app
    order = [f for f in FAMILY_LABELS if f in families] + sorted(
        f for f in families if f not in FAMILY_LABELS
    )
    return [_family_item(name, families[name]) for name in order]


def _family_item(name: str, values: Any) -> QTreeWidgetItem:
    item = QTreeWidgetItem([FAMILY_LABELS.get(name, name.capitalize()), ""])
    bold = QFont()
    bold.setBold(True)
    item.setFont(0, bold)
    if not isinstance(values, Mapping):
        item.setText(1, format_value(name, values))
    elif values.get("available", True) is False:
        _mark_unavailable(item, str(values.get("reason") or "no reason given"))
    else:
        item.addChildren(_children({k: v for k, v in values.items() if k != "available"}))
    return item


def _mark_unavailable(item: QTreeWidgetItem, reason: str) -> None:
    item.setText(1, f"not available: {reason}")
    italic = QFont()
    italic.setItalic(True)
    for column in (0, 1):
        item.setForeground(column, QBrush(_UNAVAILABLE))
    item.setFont(1, italic)


def _children(values: Mapping[str, Any]) -> list[QTreeWidgetItem]:
    return [_item(key, value) for key, value in values.items()]


def _label(key: str) -> str:
    return key.removesuffix("_bytes").replace("_", " ")


def _item(key: str, value: Any) -> QTreeWidgetItem:
    label = _label(key)
    if isinstance(value, Mapping):
        item = QTreeWidgetItem([label, _summary(value)])
        item.addChildren(_children(value))
        return item
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        item = QTreeWidgetItem([label, f"{len(value)} item{'s' if len(value) != 1 else ''}"])
        item.addChildren([_list_item(i, v) for i, v in enumerate(value)])
        return item
    return QTreeWidgetItem([label, format_value(key, value)])


def _list_item(position: int, value: Any) -> QTreeWidgetItem:
    if not isinstance(value, Mapping):
        return QTreeWidgetItem([f"[{position}]", format_value("", value)])
    name = next((str(value[k]) for k in _ITEM_NAMES if value.get(k)), f"[{position}]")
    item = QTreeWidgetItem([name, next((str(value[k]) for k in _ITEM_VALUES if value.get(k)), "")])
    item.addChildren(_children(value))
    return item


def _summary(values: Mapping[str, Any]) -> str:
    """A one-line reading of a collapsed mapping, so most facts need no expanding."""
    if isinstance(values.get("reason"), str):
        return str(values["reason"])
    if values and all(isinstance(v, bool) for v in values.values()):
        return ", ".join(k for k, v in values.items() if v) or "none"
    if all(not isinstance(v, (Mapping, list)) for v in values.values()):
        return ", ".join(f"{_label(k)} {format_value(k, v)}" for k, v in values.items())
    return ""


def format_value(key: str, value: Any) -> str:
    """Bytes in GiB/MiB, flags as yes/no, times as local time, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and key.endswith("_bytes"):
        return summary.size(float(value))
    if isinstance(value, (int, float)) and key.endswith(("_time", "_at")):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(value))
    if isinstance(value, list):
        return ", ".join(format_value("", v) for v in value) or "none"
    return str(value)
