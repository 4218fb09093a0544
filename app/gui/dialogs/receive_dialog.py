"""Receive Bundle: pick a kit's receipt (DEVICE-SEQ.kfr) or a folder of them, merge, show what came.

The merge runs on the bridge's loop (`BundlesBridge.receive`, the same core as `kitfleet bundle
receive`); the dialog only shows the answer. Text from receipts is shown as plain text.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.fleet.receipts import ReceiveReport
from app.gui.bridges.bundles_bridge import BundlesBridge

__all__ = ["ReceiveDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection


class ReceiveDialog(QDialog):
    def __init__(self, bridge: BundlesBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Receive Bundle")
        self.resize(760, 420)
        self._bridge = bridge
        self.path = QLineEdit()
        self.path.setPlaceholderText(
            "a receipt (.kfr) from kitfleet-agent export, or the folder holding them"
        )
        self.path.textChanged.connect(self._update)
        pick_file, pick_folder = QPushButton("File…"), QPushButton("Folder…")
        pick_file.clicked.connect(self._pick_file)
        pick_folder.clicked.connect(self._pick_folder)
        self.receive_button = QPushButton("Receive")
        self.receive_button.setDefault(True)
        self.receive_button.clicked.connect(self.run)
        self.state = QLabel("Each receipt is checked against the certificate pinned for its kit.")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        self.merged = QPlainTextEdit()
        self.merged.setReadOnly(True)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(pick_file)
        row.addWidget(pick_folder)
        row.addWidget(self.receive_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.state)
        layout.addWidget(self.merged)
        bridge.received.connect(self.show_report, QUEUED)
        bridge.receive_failed.connect(self._failed, QUEUED)
        self._update()

    @Slot()
    def run(self) -> None:
        source = Path(self.path.text().strip())
        self.receive_button.setEnabled(False)
        self.state.setText(f"Checking and merging {source.name}…")
        self._bridge.receive(source)

    @Slot(object)
    def show_report(self, report: ReceiveReport) -> None:
        self.merged.setPlainText("\n".join(report.lines()))
        refused, merged = len(report.refused), sum(not r.already for r in report.received)
        self.state.setText(
            f"{merged} receipt(s) merged, {len(report.received) - merged} merged before, {refused} refused"
        )
        self._update()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.state.setText(message)
        self._update()

    @Slot()
    def _pick_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Receipt", "", "Receipts (*.kfr);;All files (*)")
        if chosen:
            self.path.setText(chosen)

    @Slot()
    def _pick_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder of receipts")
        if chosen:
            self.path.setText(chosen)

    def _update(self) -> None:
        self.receive_button.setEnabled(bool(self.path.text().strip()))
