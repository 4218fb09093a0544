"""The selected kit's bundle traffic: bundles made for it, what its receipts say it imported, and
the receipts received from it. Read on the bridge's loop (`BundlesBridge.load_traffic`)."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.fleet.receipts import BundleTraffic
from app.gui.bridges.bundles_bridge import BundlesBridge
from app.gui.tables.kit_row import KitRow

__all__ = ["BundlesTab"]

SENT = ("Bundle", "Sequence", "Made", "Carries", "On the kit")
IMPORTED = ("Bundle sha256", "Sequence", "Outcome", "When (kit clock)", "Message")
RECEIPTS = ("Receipt", "Exported (kit clock)", "Received", "Jobs", "New samples", "New audit entries")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _table(headers: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))  # items show plain text: kits' words stay words
    table.resizeColumnsToContents()


class BundlesTab(QWidget):
    def __init__(self, bridge: BundlesBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._device: str | None = None
        self.message = QLabel("Select an adopted kit.")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.sent, self.imported, self.receipts = _table(SENT), _table(IMPORTED), _table(RECEIPTS)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        for title, table in (
            ("Bundles sent", self.sent),
            ("Imported (as the kit's receipts say)", self.imported),
            ("Receipts received", self.receipts),
        ):
            layout.addWidget(QLabel(title))
            layout.addWidget(table)
        bridge.traffic_loaded.connect(self.show_traffic, Qt.ConnectionType.QueuedConnection)

    def show_row(self, row: KitRow | None) -> None:
        device = row.device_id if row is not None and row.kit is not None else None
        if device == self._device:
            return
        self._device = device
        for table in (self.sent, self.imported, self.receipts):
            table.setRowCount(0)
        self.message.setText("Select an adopted kit." if device is None else "Reading…")
        if device is not None:
            self._bridge.load_traffic(device)

    @Slot(str, object)
    def show_traffic(self, device_id: str, traffic: BundleTraffic) -> None:
        if device_id != self._device:
            return
        _fill(
            self.sent,
            [
                [b.file, str(b.sequence), _when(b.created_at), ", ".join(b.carried), b.outcome]
                for b in traffic.sent
            ],
        )
        _fill(
            self.imported,
            [
                [i.bundle_sha256[:16], str(i.sequence or ""), i.outcome, _when(i.at), i.message]
                for i in traffic.imports
            ],
        )
        _fill(
            self.receipts,
            [
                [
                    str(r.seq),
                    _when(r.exported_at),
                    _when(r.received_at),
                    str(r.counts.get("jobs", 0)),
                    str(r.counts.get("samples_new", 0)),
                    str(r.counts.get("audit_new", 0)),
                ]
                for r in traffic.receipts
            ],
        )
        self.message.setText(
            "Nothing sent or received by bundle yet."
            if traffic.empty
            else f"{len(traffic.sent)} bundle(s) sent, {len(traffic.receipts)} receipt(s) received"
        )
