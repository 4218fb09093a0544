"""The Alerts panel: every kit's alerts in one list, worst first; a double-click selects the kit."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.fleet.alerts import Alert
from app.gui._qt import dot_icon
from app.gui.tables.fleet_model import ALERT_COLOURS
from app.gui.tables.kit_row import KitRow

__all__ = ["AlertsPanel"]

_HEADERS = ("Severity", "Kit", "Kind", "What")


class AlertsPanel(QWidget):
    kit_chosen = Signal(str)  # device ID

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("No alerts")
        self.table = QTableWidget(0, len(_HEADERS))
        self.table.setHorizontalHeaderLabels(list(_HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(self._chosen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self._shown: list[Alert] = []

    def alerts(self) -> list[Alert]:
        return list(self._shown)

    def show_rows(self, rows: list[KitRow]) -> None:
        """Rebuild only when the set of alerts changed: the panel must not flicker every poll."""
        alerts = sorted((a for r in rows if r.view for a in r.view.alerts), key=lambda a: (a.rank, a.kit))
        if alerts == self._shown:
            return
        self._shown = alerts
        self.table.setRowCount(len(alerts))
        for position, alert in enumerate(alerts):
            colour = ALERT_COLOURS[alert.severity]
            severity = QTableWidgetItem(dot_icon(colour), alert.severity)
            severity.setForeground(QColor(colour))
            severity.setData(Qt.ItemDataRole.UserRole, alert.device_id)
            for column, item in enumerate(
                (
                    severity,
                    QTableWidgetItem(alert.kit),
                    QTableWidgetItem(alert.kind),
                    QTableWidgetItem(alert.message),
                )
            ):
                self.table.setItem(position, column, item)
        self.table.resizeColumnsToContents()
        critical = sum(a.severity == "critical" for a in alerts)
        self.summary.setText(
            f"{critical} critical, {len(alerts) - critical} warnings" if alerts else "No alerts"
        )

    def _chosen(self, row: int, _: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.kit_chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))
