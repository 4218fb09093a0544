"""The selected kit's hardware, family by family, marked as last-known when the kit is away."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QTreeWidget, QVBoxLayout, QWidget

from agent.wire import FactFamilies, format_device_id
from app.gui._qt import timer
from app.gui.tables.kit_row import COLUMNS, KitRow, age_text, cell_text
from app.gui.tabs.facts_tree import family_items

__all__ = ["DetailsPane"]

_AWAY = {"offline": "offline", "identity_changed": "identity changed", "checking": "not checked yet"}
_BANNER_STYLE = (
    "background: #fff3cd; color: #664d03; border: 1px solid #ffe69c; border-radius: 3px; padding: 4px 8px;"
)


class DetailsPane(QWidget):
    """Shows one `KitRow`; rebuilds the tree only when that kit's facts change."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; font-size: 13pt;")
        self.banner = QLabel()
        self.banner.setStyleSheet(_BANNER_STYLE)
        self.banner.setWordWrap(True)
        self.placeholder = QLabel()
        self.placeholder.setWordWrap(True)
        # The placeholder stands in for the tree: it takes the space, text at the top.
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        for label in (self.title, self.banner):
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Fact", "Value"])
        self.tree.setAlternatingRowColors(True)
        layout = QVBoxLayout(self)
        for widget in (self.title, self.banner, self.placeholder, self.tree):
            layout.addWidget(widget)
        self._row: KitRow | None = None
        self._shown_facts: tuple[str, float] | None = None
        # Ages in the banner ("3 min ago") go stale while nothing else changes.
        self._ticker = timer(self, 30_000, self._update_banner)
        self._ticker.start()
        self._fill_tree(None)
        self.show_row(None)

    def shown_device(self) -> str | None:
        """The device ID whose facts the tree holds, if any."""
        return self._shown_facts[0] if self._shown_facts else None

    def show_row(self, row: KitRow | None) -> None:
        self._row = row
        self.title.setText(_title(row))
        self._update_banner()
        self._update_placeholder()
        facts = (row.device_id, row.facts_collected_at) if row and row.has_facts else None
        if facts != self._shown_facts:
            self._fill_tree(row.families if row and facts else None)
            self._shown_facts = facts

    def _fill_tree(self, families: FactFamilies | None) -> None:
        self.tree.clear()
        self.tree.setVisible(families is not None)
        if families is None:
            return
        self.tree.addTopLevelItems(family_items(families))
        self.tree.expandToDepth(0)
        self.tree.resizeColumnToContents(0)

    def _update_banner(self) -> None:
        row = self._row
        away = _AWAY.get(row.row_status) if row and row.has_facts else None
        if row is not None and away is not None:
            self.banner.setText(f"{away} — showing facts from {age_text(row.facts_collected_at)}")
        self.banner.setVisible(away is not None)

    def _update_placeholder(self) -> None:
        row, text = self._row, ""
        if row is None:
            text = "Select a kit to see its hardware."
        elif row.kit is None and row.row_status == "conflict":
            text = (
                "Another device announces the name of an adopted kit. Nothing is sent to it; "
                "adopt it only if it is a different kit that happens to share the name."
            )
        elif row.kit is None and row.row_status == "identity_changed":
            text = (
                "This kit announces the name or address of an adopted kit but is not that "
                "kit. Adopt it only if the kit was reinstalled on purpose."
            )
        elif row.kit is None:
            text = (
                "This kit is not adopted yet. Adopt it (Fleet ▸ Adopt…) with the pairing "
                "code it shows to read its hardware."
            )
        elif not row.has_facts:
            text = (
                "Reading facts…"
                if row.row_status == "online"
                else "No facts yet: the kit has not answered since it was adopted."
            )
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))


def _title(row: KitRow | None) -> str:
    if row is None:
        return "No kit selected"
    parts = [row.name, cell_text(row, COLUMNS.index("Kit model")), format_device_id(row.device_id, groups=8)]
    return "  ·  ".join(p for p in parts if p)
