"""Fleet operations in the main window: filter, History tab, Alerts and Audit docks, tags,
Export Report, View menu, light/dark palette and window state remembered between runs.

Installed by one call from `MainWindow`, so the window's own module stays about the fleet
table and the kit tabs. It sees the window twice: as Qt's main window (docks, menus, status bar,
saved state) and as a `FleetWindow` (the bridge, the fleet table, the selection), so this
module never imports the window's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QByteArray, QObject, QSettings, QSortFilterProxyModel, Qt, SignalInstance, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QMainWindow,
    QMenu,
    QProgressBar,
    QTableView,
    QTabWidget,
    QToolBar,
    QWidget,
)

from app.fleet.alerts import Severity
from app.fleet.snapshot import parse_tags
from app.gui._qt import action, timer
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.charts.history_chart import HistoryPanel
from app.gui.docks.alerts_panel import AlertsPanel
from app.gui.docks.audit_view import AuditView
from app.gui.palette import apply_palette
from app.gui.tables.fleet_model import FleetTableModel
from app.gui.tables.kit_row import KitRow

__all__ = ["FleetOpsUi", "FleetWindow", "OpsPrompts", "install_fleet_ops"]

QUEUED = Qt.ConnectionType.QueuedConnection
STATE_FILE = "window.ini"
# 1: the laptop layout (docks collapsed); an older saved layout, with its docks open, is not restored
STATE_VERSION = 1
FIT_ROWS = 25


REPORT_TYPES = {"HTML report (*.html)": ".html", "PDF report, with the HTML beside it (*.pdf)": ".pdf"}


def choose_report(parent: QWidget | None, suggested: Path) -> Path | None:
    """Where to write the report; its suffix (.html or .pdf) says which, as the type chosen does."""
    name, chosen = QFileDialog.getSaveFileName(
        parent, "Export the field report", str(suggested), ";;".join(REPORT_TYPES)
    )
    if not name:
        return None
    path = Path(name)
    return (
        path
        if path.suffix.lower() in (".html", ".pdf")
        else path.with_suffix(REPORT_TYPES.get(chosen, ".html"))
    )


def edit_tags(parent: QWidget | None, kit: str, current: list[str]) -> list[str] | None:
    text, ok = QInputDialog.getText(
        parent,
        "Tags",
        f"Tags of {kit}, separated by commas (e.g. a site, or the boxes of one kit):",
        text=", ".join(current),
    )
    return parse_tags(text) if ok else None


@dataclass(frozen=True)
class OpsPrompts:
    """The questions fleet operations ask, replaceable in tests."""

    choose_report: Callable[[QWidget | None, Path], Path | None] = choose_report
    edit_tags: Callable[[QWidget | None, str, list[str]], list[str] | None] = edit_tags


class FleetWindow(Protocol):
    """What fleet operations use of the main window beyond Qt's `QMainWindow`."""

    @property
    def bridge(self) -> FleetBridge: ...

    @property
    def model(self) -> FleetTableModel: ...

    @property
    def proxy(self) -> QSortFilterProxyModel: ...

    @property
    def table(self) -> QTableView: ...

    @property
    def tabs(self) -> QTabWidget: ...

    @property
    def quit_action(self) -> QAction: ...

    @property
    def closed(self) -> SignalInstance:  # the window closed: save its state
        ...

    def selected_row(self) -> KitRow | None: ...

    def select_device(self, device_id: str) -> None: ...


class FleetOpsUi(QObject):
    def __init__(self, window: QMainWindow, fleet: FleetWindow, prompts: OpsPrompts) -> None:
        super().__init__(window)
        self.window, self.fleet, self.prompts = window, fleet, prompts
        self.ops = fleet.bridge.fleet_ops
        self.settings = QSettings(str(fleet.bridge.settings.home / STATE_FILE), QSettings.Format.IniFormat)
        self._make_widgets()
        self._make_actions()
        self._connect()
        self._restore()

    def _make_widgets(self) -> None:
        w, f = self.window, self.fleet
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter kits: name, tag, status, model, alert…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMaximumWidth(360)
        f.proxy.setFilterKeyColumn(-1)  # any column
        # Fitting columns to every row's contents took a second of the GUI thread per poll with
        # 200 kits (and, through the GIL, of the polling loop); the first rows tell widths well.
        f.table.horizontalHeader().setResizeContentsPrecision(FIT_ROWS)
        f.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.history = HistoryPanel(self.ops.load_history)
        f.tabs.addTab(self.history, "History")
        self.alerts = AlertsPanel()
        self.audit = AuditView(self.ops)
        self.alerts_dock = self._dock("Alerts", "alerts-dock", self.alerts)
        self.audit_dock = self._dock("Audit log", "audit-dock", self.audit)
        w.tabifyDockWidget(self.alerts_dock, self.audit_dock)
        self.alerts_dock.raise_()
        w.resizeDocks([self.alerts_dock], [150], Qt.Orientation.Vertical)  # the table stays first
        # Collapsed until something needs attention (a new alert) or the technician asks: on a
        # laptop's 768 lines an open dock costs the fleet table half its rows.
        self.alerts_dock.hide()
        self.audit_dock.hide()
        self._alerted: set[tuple[str, str, Severity]] = set()  # alerts already shown to the technician
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the report's length is not known in advance
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        w.statusBar().addPermanentWidget(self.progress)

    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)  # saveState() finds docks by name
        dock.setWidget(widget)
        self.window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return dock

    def _make_actions(self) -> None:
        w = self.window
        self.export_action = action("&Export Report…", w, QKeySequence("Ctrl+E"), self.export_report)
        self.tags_action = action("Edit &Tags…", w, QKeySequence("Ctrl+T"), self.edit_tags)
        self.audit_action = action("&Audit Log", w, QKeySequence("Ctrl+L"), self.toggle_audit)
        self.audit_action.setCheckable(True)  # the one View entry for the audit dock
        self.audit_dock.visibilityChanged.connect(self._sync_audit_action)
        self.find_action = action("&Filter Kits", w, QKeySequence.StandardKey.Find, self.filter.setFocus)
        self.dark_action = action("&Dark Palette", w, QKeySequence("Ctrl+Shift+D"), self.toggle_dark)
        self.dark_action.setCheckable(True)
        fleet = next(
            m for a in w.menuBar().actions() if isinstance(m := a.menu(), QMenu) and a.text() == "&Fleet"
        )
        fleet.insertActions(self.fleet.quit_action, [self.tags_action, self.export_action])
        fleet.insertSeparator(self.fleet.quit_action)
        view = w.menuBar().addMenu("&View")
        view.addActions(
            [
                self.find_action,
                self.alerts_dock.toggleViewAction(),
                self.audit_action,
            ]
        )
        view.addSeparator()
        view.addAction(self.dark_action)
        toolbar = w.findChild(QToolBar, "fleet-toolbar")
        if isinstance(toolbar, QToolBar):
            toolbar.addAction(self.export_action)
            toolbar.addWidget(self.filter)

    def _connect(self) -> None:
        w = self.fleet
        w.bridge.views.connect(w.model.apply_views, QUEUED)
        self.ops.history_loaded.connect(self.history.apply_history, QUEUED)
        self.ops.report_progress.connect(self._report_progress, QUEUED)
        self.ops.report_written.connect(self._report_written, QUEUED)
        w.bridge.failed.connect(self._maybe_report_failed, QUEUED)
        self.filter.textChanged.connect(w.proxy.setFilterFixedString)
        self.alerts.kit_chosen.connect(w.select_device)
        # A poll changes many rows at once: look at them all once, after the burst.
        self._rows_timer = timer(self, 0, self._on_rows_changed, single_shot=True)
        for signal in (w.model.dataChanged, w.model.rowsInserted, w.model.rowsRemoved):
            signal.connect(lambda *_: self._rows_timer.start())
        w.table.selectionModel().selectionChanged.connect(self._on_selection)
        w.closed.connect(self.save)
        # Something was done to a kit from this window: show its models and jobs now, not at
        # the next full poll.
        w.bridge.models.changed.connect(lambda device_id, _: w.bridge.poll_kits([device_id]), QUEUED)
        w.bridge.jobs.changed.connect(lambda device_id, _: w.bridge.poll_kits([device_id]), QUEUED)
        w.bridge.models.deployed.connect(
            lambda outcomes: w.bridge.poll_kits([o.kit.device_id for o in outcomes]), QUEUED
        )

    # state ------------------------------------------------------------------------------

    def _restore(self) -> None:
        geometry, state = self.settings.value("geometry"), self.settings.value("state")
        if isinstance(geometry, QByteArray):
            self.window.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.window.restoreState(state, STATE_VERSION)
        dark = self.settings.value("dark", False, type=bool)
        self.dark_action.setChecked(bool(dark))
        self._apply_palette()

    @Slot()
    def save(self) -> None:
        self.settings.setValue("geometry", self.window.saveGeometry())
        self.settings.setValue("state", self.window.saveState(STATE_VERSION))
        self.settings.setValue("dark", self.dark_action.isChecked())
        self.settings.sync()

    @Slot()
    def toggle_dark(self) -> None:
        self._apply_palette()
        self.settings.setValue("dark", self.dark_action.isChecked())

    def _apply_palette(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_palette(app, dark=self.dark_action.isChecked())

    # actions ----------------------------------------------------------------------------

    @Slot()
    def export_report(self) -> None:
        suggested = Path.home() / f"kitfleet-report-{time.strftime('%Y%m%d-%H%M')}.html"
        out = self.prompts.choose_report(self.window, suggested)
        if out is None:
            return
        self.export_action.setEnabled(False)
        self.progress.show()
        self.window.statusBar().showMessage(f"Exporting the field report to {out}…")
        if out.suffix.lower() == ".pdf":  # printed from the HTML, which is kept beside it, as the CLI does
            self.ops.export_report(out.with_suffix(".html"), pdf=out)
        else:
            self.ops.export_report(out)

    @Slot()
    def edit_tags(self) -> None:
        row = self.fleet.selected_row()
        if row is None or row.kit is None:
            self.window.statusBar().showMessage("Select an adopted kit to tag it", 5000)
            return
        tags = self.prompts.edit_tags(self.window, row.name, row.view.tags if row.view else [])
        if tags is not None:
            self.ops.set_tags(row.device_id, tags)

    @Slot()
    def toggle_audit(self) -> None:
        if self.audit_action.isChecked():
            self.show_audit()
        else:
            self.audit_dock.hide()

    @Slot()
    def _sync_audit_action(self) -> None:
        # visibilityChanged also fires when another tab of the dock area is raised: ask isHidden.
        self.audit_action.setChecked(not self.audit_dock.isHidden())

    @Slot()
    def show_audit(self) -> None:
        self.audit_dock.show()
        self.audit_dock.raise_()
        row = self.fleet.selected_row()
        self.audit.choose(row.device_id if row is not None and row.kit is not None else "")

    @Slot(str)
    def _report_progress(self, message: str) -> None:
        self.window.statusBar().showMessage(message)

    @Slot(object)
    def _report_written(self, path: Path) -> None:
        self._report_done()
        self.window.statusBar().showMessage(f"Field report written to {path}", 30_000)

    @Slot(str, str)
    def _maybe_report_failed(self, operation: str, _: str) -> None:
        if operation == "report":
            self._report_done()

    def _report_done(self) -> None:
        self.progress.hide()
        self.export_action.setEnabled(True)

    @Slot()
    def _on_selection(self) -> None:
        # At once, not after the deferred look at the rows: Ctrl+T right after a click must work.
        self._update_tags_action()
        self._rows_timer.start()

    @Slot()
    def _on_rows_changed(self) -> None:
        rows = self.fleet.model.rows()
        self.alerts.show_rows(rows)
        self._attend()
        self.audit.set_kits(rows)
        self.history.show_row(self.fleet.selected_row())
        self._update_tags_action()

    def _attend(self) -> None:
        """Open the Alerts dock when an alert appears that was not shown before."""
        current = {(a.device_id, a.kind, a.severity) for a in self.alerts.alerts()}
        if current - self._alerted:
            self.alerts_dock.show()
            self.alerts_dock.raise_()
        self._alerted = current  # one that clears and comes back is new again

    def _update_tags_action(self) -> None:
        selected = self.fleet.selected_row()
        self.tags_action.setEnabled(selected is not None and selected.kit is not None)


def install_fleet_ops(
    window: QMainWindow, fleet: FleetWindow, prompts: OpsPrompts | None = None
) -> FleetOpsUi:
    """Fleet operations in `window`; `fleet` is what it shows (in the app, the same window)."""
    return FleetOpsUi(window, fleet, prompts or OpsPrompts())
