"""The Audit view: this app's log or a kit's (pulled again and verified), with the chain's state."""

from __future__ import annotations

import time

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.wire import AuditEntry
from app.fleet.audit import ChainStatus
from app.gui.bridges.ops_bridge import OpsBridge
from app.gui.tables.kit_row import KitRow

__all__ = ["AuditView"]

_HEADERS = ("#", "When", "Who", "Action", "Target", "Outcome")
_OK, _BAD = "color: #1e7b34; font-weight: bold;", "color: #b3261e; font-weight: bold;"


class AuditView(QWidget):
    def __init__(self, bridge: OpsBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self.source = QComboBox()
        self.source.addItem("This app", "")
        self.source.currentIndexChanged.connect(lambda _: self.reload())
        self.verify_button = QPushButton("Pull and verify")
        self.verify_button.clicked.connect(self.reload)
        self.state = QLabel()
        self.table = QTableWidget(0, len(_HEADERS))
        self.table.setHorizontalHeaderLabels(list(_HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Log of"))
        top.addWidget(self.source)
        top.addWidget(self.verify_button)
        top.addWidget(self.state, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table)
        bridge.audit_loaded.connect(self.show_entries)

    def set_kits(self, rows: list[KitRow]) -> None:
        """Offer every adopted kit; keep the current choice."""
        wanted = [(r.name, r.device_id) for r in rows if r.kit is not None]
        offered = [(self.source.itemText(i), self.source.itemData(i)) for i in range(1, self.source.count())]
        if wanted == offered:
            return
        current = self.source.currentData()
        self.source.blockSignals(True)
        while self.source.count() > 1:
            self.source.removeItem(1)
        for name, device_id in wanted:
            self.source.addItem(name, device_id)
        self.source.setCurrentIndex(max(0, self.source.findData(current)))
        self.source.blockSignals(False)

    def choose(self, device_id: str) -> None:
        self.source.setCurrentIndex(max(0, self.source.findData(device_id)))
        self.reload()

    def reload(self) -> None:
        self.state.setText("Pulling and verifying…" if self.source.currentData() else "Reading…")
        self._bridge.load_audit(str(self.source.currentData() or ""))

    def show_entries(self, device_id: str, entries: list[AuditEntry], chain: ChainStatus | None) -> None:
        if device_id != (self.source.currentData() or ""):
            return
        if chain is None:
            self.state.setText("this laptop's own log")
            self.state.setStyleSheet("")
        else:
            self.state.setText(f"chain: {chain.summary()}")
            self.state.setStyleSheet(_BAD if chain.problems else _OK if chain.checked_at else "")
        self.table.setRowCount(len(entries))
        for position, e in enumerate(reversed(entries)):
            who = e.detail.get("kit", "") if not device_id else f"{e.actor_label} [{e.actor_id[:8]}]"
            cells = (
                str(e.seq),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts)),
                str(who),
                e.action,
                e.target,
                e.outcome,
            )
            for column, text in enumerate(cells):
                self.table.setItem(position, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
