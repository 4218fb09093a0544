"""Pre-flight for the selected kits: one row per kit, one cell per check, the action in each tooltip.

The checks run on the bridge's loop (`OpsBridge.run_preflight`, the same core as `kitfleet
preflight`); the dialog only shows what comes back, so the window never waits on a kit.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.fleet.preflight import KitPreflight
from app.gui.bridges.ops_bridge import OpsBridge

__all__ = ["PreflightDialog"]

_COLOURS = {"pass": QColor("#cfeccf"), "warn": QColor("#fbe7b5"), "fail": QColor("#f5c2c2")}
_WORDS = {"pass": "ok", "warn": "warn", "fail": "FAIL"}


class PreflightDialog(QDialog):
    def __init__(self, bridge: OpsBridge, device_ids: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pre-flight")
        self.resize(1000, 360)
        self._bridge, self._device_ids = bridge, device_ids
        self.summary = QLabel(f"Checking {len(device_ids)} kit(s)…")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # kit names and messages come from kits
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.again = QPushButton("Check again")
        self.again.clicked.connect(self.run)
        self.set_clocks = QPushButton("Set clocks to this laptop's")
        self.set_clocks.setToolTip("the kits whose clock check did not pass; needs an admin token, audited")
        self.set_clocks.setEnabled(False)
        self.set_clocks.clicked.connect(self._set_clocks)
        self._skewed: list[str] = []
        buttons = QHBoxLayout()
        buttons.addWidget(self.again)
        buttons.addWidget(self.set_clocks)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        bridge.preflight_done.connect(self.show_results, Qt.ConnectionType.QueuedConnection)
        bridge.clocks_set.connect(self._clocks_set, Qt.ConnectionType.QueuedConnection)

    @Slot()
    def run(self) -> None:
        self.again.setEnabled(False)
        self.summary.setText(f"Checking {len(self._device_ids)} kit(s)…")
        self._bridge.run_preflight(self._device_ids)

    @Slot(object)
    def show_results(self, results: list[KitPreflight]) -> None:
        if {r.kit.device_id for r in results} != set(self._device_ids):
            return  # another dialog's run
        self.again.setEnabled(True)
        self._skewed = [r.kit.device_id for r in results if (c := r.check("clock")) and c.status != "pass"]
        self.set_clocks.setEnabled(bool(self._skewed))
        ids = list(dict.fromkeys(c.id for r in results for c in r.checks))
        self.table.clear()
        self.table.setRowCount(len(results))
        self.table.setColumnCount(len(ids) + 1)
        self.table.setHorizontalHeaderLabels(["Kit", *ids])
        for row, result in enumerate(results):
            self.table.setItem(
                row, 0, QTableWidgetItem(f"{result.kit.name}: {'ready' if result.ready else 'NOT READY'}")
            )
            for column, check_id in enumerate(ids, start=1):
                check = result.check(check_id)
                if check is None:
                    continue
                item = QTableWidgetItem(_WORDS[check.status])
                item.setBackground(_COLOURS[check.status])
                item.setToolTip(check.message + (f"\nFix: {check.action}" if check.action else ""))
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        ready = sum(r.ready for r in results)
        actions = [
            f"{r.kit.name} {c.id}: {c.action}" for r in results for c in r.checks if c.status == "fail"
        ]
        self.summary.setText(
            f"{ready} of {len(results)} kit(s) ready." + "".join(f"\n• {a}" for a in actions[:8])
        )

    @Slot()
    def _set_clocks(self) -> None:
        self.set_clocks.setEnabled(False)
        self.summary.setText(f"Setting {len(self._skewed)} kit clock(s)…")
        self._bridge.set_clocks(self._skewed)

    @Slot(object)
    def _clocks_set(self, said: list[str]) -> None:
        self.summary.setText("\n".join(said) + "\nChecking again…")
        self.run()
