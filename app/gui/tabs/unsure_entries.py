"""The Field data tab's entries for unsure inputs: the model's answer as text, its details as a
tooltip, and a received item's queued label."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from agent.wire.field_datasets import UnsureItem
from app.fleet.receipts.unsure import PendingLabel

__all__ = ["ID_ROLE", "mark_queued", "unsure_entry"]

ID_ROLE = Qt.ItemDataRole.UserRole


def unsure_entry(item: UnsureItem, origin: str = "") -> QListWidgetItem:
    best = item.classes[0].label if item.classes else "?"
    entry = QListWidgetItem(f"{best} {item.top:.2f}{origin}")
    entry.setData(ID_ROLE, item.id)
    margin = "" if item.margin is None else f", margin {item.margin:.2f}"
    entry.setToolTip(f"{item.model} {item.version}: {best} {item.top:.2f}{margin}\n{item.source}")
    return entry


def mark_queued(entry: QListWidgetItem, pending: PendingLabel) -> None:
    entry.setText(f"→ {pending.label} (queued)")
    entry.setToolTip(
        entry.toolTip() + f"\nlabelled {pending.dataset}/{pending.label}: sent once the kit answers"
    )
