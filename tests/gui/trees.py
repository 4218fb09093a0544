"""Read what a QTreeWidget shows, as plain dicts."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem


def top_items(tree: QTreeWidget) -> dict[str, QTreeWidgetItem]:
    items = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    return {item.text(0): item for item in items if item is not None}


def child_values(item: QTreeWidgetItem) -> dict[str, str]:
    children = [item.child(i) for i in range(item.childCount())]
    return {child.text(0): child.text(1) for child in children if child is not None}


def child_item(item: QTreeWidgetItem, text: str) -> QTreeWidgetItem:
    """The child whose first column reads `text` (the test fails when there is none)."""
    children = [item.child(i) for i in range(item.childCount())]
    found = [child for child in children if child is not None and child.text(0) == text]
    assert found, f"no {text!r} under {item.text(0)!r}"
    return found[0]
