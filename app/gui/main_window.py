"""The main window: the fleet table above the selected kit's tabs (hardware, models, try it, jobs,
live, history)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QSortFilterProxyModel, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QWidget,
)

from app.fleet.inventory import Kit
from app.gui._qt import action, timer
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.adopt_dialog import CodePrompt, ask_pairing_code
from app.gui.dialogs.prompts import Prompts
from app.gui.dialogs.provision_dialog import ProvisionDialog
from app.gui.model_actions import ModelActions
from app.gui.ops_window import install_fleet_ops
from app.gui.rollout_window import install_rollouts
from app.gui.tables.fleet_model import FleetTableModel
from app.gui.tables.kit_row import KitRow
from app.gui.tables.rows import row_view
from app.gui.tabs.kit_tabs import KitTabs
from app.gui.window_layout import FLEET_HIDDEN, JOBS_HIDDEN, LAPTOP, MODELS_HIDDEN, WindowLayout

__all__ = ["MainWindow"]

QUEUED = Qt.ConnectionType.QueuedConnection  # bridge signals come from its loop thread
# Background work the technician did not ask for reports in the status bar only, so a
# kit that keeps failing does not keep raising a window.
_BACKGROUND = {"status", "discovery", "facts update"}
# Work whose dialog or tab shows its own failure where the technician is looking.
_SHOWN_IN_PLACE = {"model check", "deploy", "inference", "quantize", "submit job", "job choices", "job logs"}
_MAX_COLUMN_WIDTH = 320


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(
        self,
        bridge: FleetBridge,
        prompt_code: CodePrompt = ask_pairing_code,
        prompts: Prompts | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("kitfleet")
        self._fit_screen()
        self.bridge, self._prompt_code = bridge, prompt_code
        self.prompts = prompts or Prompts()
        self.model = FleetTableModel(self)
        self.proxy = QSortFilterProxyModel(self, sortRole=FleetTableModel.SortRole)
        self.proxy.setSourceModel(self.model)
        self.table = row_view(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.tabs = KitTabs(bridge.models, bridge.jobs, bridge.streams, self.prompts)
        self.details = self.tabs.details
        self.tabs.jobs.fleet_rows = self.model.rows  # New job… can target a tag's kits
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.tabs)
        self.splitter.setSizes([300, 420])  # in proportion: about 10 kits above a kit's tabs
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.summary = QLabel()
        self.statusBar().addPermanentWidget(self.summary)
        self._error_box: QMessageBox | None = None
        self._make_actions()
        self._connect()
        self._refresh_from_model()
        self.fleet_ops = install_fleet_ops(self, self)  # filter, history, alerts, audit, report, state
        self.layout_state = WindowLayout(
            self.fleet_ops.settings,
            {
                "fleet": (self.table, FLEET_HIDDEN),
                "jobs": (self.tabs.jobs.table, JOBS_HIDDEN),
                "models": (self.tabs.models.table, MODELS_HIDDEN),
            },
            {"fleet": self.splitter, "jobs": self.tabs.jobs.splitter},
            self,
        )
        self.closed.connect(self.layout_state.save)

    def _fit_screen(self) -> None:
        """The laptop size by default, smaller where the screen is (the title bar needs room)."""
        width, height = LAPTOP
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        # Offscreen (tests, `kitfleet demo`) the screen is a nominal 800x800, not a limit.
        if screen is not None and not screen.isEmpty() and QGuiApplication.platformName() != "offscreen":
            width, height = min(width, screen.width()), min(height, screen.height())
        self.resize(width, height)

    def _make_actions(self) -> None:
        self.adopt_action = action("&Adopt…", self, QKeySequence("Ctrl+D"), self.adopt_selected)
        self.refresh_action = action("&Refresh", self, QKeySequence.StandardKey.Refresh, self.refresh)
        self.provision_action = action(
            "&Provision a Kit over SSH…", self, QKeySequence("Ctrl+Shift+P"), self.provision
        )
        self.quit_action = action("&Quit", self, QKeySequence("Ctrl+Q"), self.close)
        self.preflight_action = action("Pre-&flight…", self, QKeySequence("Ctrl+Shift+F"), self.preflight)
        menu = self.menuBar().addMenu("&Fleet")
        menu.addActions(
            [self.adopt_action, self.provision_action, self.refresh_action, self.preflight_action]
        )
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self.model_actions = models = ModelActions(self, self.bridge.models, self.prompts, self.model.rows)
        self.deploy_action = models.deploy_action
        models_menu = self.menuBar().addMenu("&Models")
        models_menu.addActions([models.deploy_action, models.quantize_action])
        rollouts = self.bridge.rollouts
        self.rollouts = install_rollouts(self, rollouts, self.prompts, self.model.rows, models_menu)
        self._make_bundle_actions()
        toolbar = self.addToolBar("Fleet")
        toolbar.setObjectName("fleet-toolbar")
        toolbar.addActions([self.adopt_action, self.refresh_action, self.deploy_action])

    def _make_bundle_actions(self) -> None:
        """Bundles for kits the laptop cannot reach, receipts back, and each kit's Bundles tab."""
        from app.gui.bridges.bundles_bridge import BundlesBridge
        from app.gui.tabs.bundles_tab import BundlesTab

        self.bundles = BundlesBridge(self.bridge, parent=self.bridge)
        self.bundles_tab = BundlesTab(self.bundles)
        self.tabs.add_page(self.bundles_tab, "Bundles", self.bundles_tab.show_row)
        self.create_bundle_action = action(
            "&Create Bundle…", self, QKeySequence("Ctrl+Shift+B"), self.create_bundle
        )
        self.receive_bundle_action = action(
            "&Receive Bundle…", self, QKeySequence("Ctrl+Shift+R"), self.receive_bundle
        )
        self.menuBar().addMenu("&Bundles").addActions([self.create_bundle_action, self.receive_bundle_action])

    @Slot()
    def create_bundle(self) -> None:
        from app.gui.dialogs.create_bundle_dialog import CreateBundleDialog

        kits = [r.kit for r in self.model.rows() if r.kit is not None]
        dialog = CreateBundleDialog(self.bundles, kits, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    @Slot()
    def receive_bundle(self) -> None:
        from app.gui.dialogs.receive_dialog import ReceiveDialog

        dialog = ReceiveDialog(self.bundles, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def _connect(self) -> None:
        # Coalesce a burst of row updates (a poll round's statuses, each kit's facts) into one
        # refresh of the summary, the selected kit's tabs and the columns after the burst:
        # each refresh reads every row, and per row that was O(kits²) work at start-up.
        self._changed_timer = timer(self, 0, self._refresh_from_model, single_shot=True)
        # "last seen 3 min ago" ages while no data changes; repaint to keep it true.
        self._age_timer = timer(self, 30_000, self.table.viewport().update)
        self._age_timer.start()
        bridge, model = self.bridge, self.model
        bridge.kits_loaded.connect(model.add_kits, QUEUED)
        bridge.announced.connect(model.add_sighting, QUEUED)
        bridge.withdrawn.connect(model.remove_sighting, QUEUED)
        bridge.statuses.connect(model.apply_statuses, QUEUED)
        bridge.facts_loaded.connect(model.apply_facts, QUEUED)
        bridge.adopted.connect(self._on_adopted, QUEUED)
        bridge.failed.connect(self._on_failed, QUEUED)
        bridge.models.changed.connect(self._on_kit_changed, QUEUED)
        bridge.jobs.changed.connect(self._on_kit_changed, QUEUED)
        for source in (self.tabs.models, self.tabs.try_it, self.tabs.jobs, self.model_actions):
            source.status.connect(self._show_status)
        for signal in (model.dataChanged, model.rowsInserted, model.rowsRemoved):
            signal.connect(self._model_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)

    # reading the selection -------------------------------------------------------

    def selected_row(self) -> KitRow | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row(str(rows[0].data(FleetTableModel.DeviceIdRole)))

    def select_device(self, device_id: str) -> None:
        for position in range(self.proxy.rowCount()):
            index = self.proxy.index(position, 0)
            if index.data(FleetTableModel.DeviceIdRole) == device_id:
                self.table.selectRow(position)
                return

    # actions -----------------------------------------------------------------------

    @Slot()
    def adopt_selected(self) -> None:
        row = self.selected_row()
        if row is None or not _adoptable(row):
            return
        answer = self._prompt_code(self, row)
        if answer is None:
            return
        self.statusBar().showMessage(f"Adopting {row.name}…")
        self.bridge.adopt(row.device_id, answer.code, answer.scope)

    @Slot()
    def preflight(self) -> None:
        """Pre-flight for the selected adopted kits (every adopted kit when none is selected)."""
        from app.gui.dialogs.preflight_dialog import PreflightDialog

        chosen = [
            str(i.data(FleetTableModel.DeviceIdRole)) for i in self.table.selectionModel().selectedRows()
        ]
        adopted = [r.device_id for r in self.model.rows() if r.kit is not None]
        device_ids = [d for d in chosen if d in adopted] or adopted
        if not device_ids:
            self.statusBar().showMessage("Adopt a kit first: pre-flight checks adopted kits")
            return
        dialog = PreflightDialog(self.bridge.fleet_ops, device_ids, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        dialog.run()

    @Slot()
    def provision(self) -> None:
        """The Provision dialog (non-modal): a kit it installs and adopts joins the table at once."""
        dialog = ProvisionDialog(self.bridge.provisioning, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.provisioned.connect(self._on_adopted)
        dialog.provisioned.connect(lambda kit: self.bridge.poll_kits([kit.device_id]))
        dialog.show()

    @Slot()
    def refresh(self) -> None:
        self.statusBar().showMessage("Checking every adopted kit…", 5000)
        self.bridge.refresh()

    # answers -------------------------------------------------------------------------

    @Slot(object)
    def _on_adopted(self, kit: Kit) -> None:
        self.model.add_kits([kit])
        self.statusBar().showMessage(f"Adopted {kit.name} at {kit.address}", 10_000)

    @Slot(str)
    def _show_status(self, message: str) -> None:
        self.statusBar().showMessage(message, 30_000)

    @Slot(str, str)
    def _on_kit_changed(self, device_id: str, message: str) -> None:
        row = self.model.row(device_id)
        self._show_status(f"{row.name}: {message}" if row else message)

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        self.statusBar().showMessage(f"{operation.capitalize()} failed: {message}", 30_000)
        if operation not in _BACKGROUND | _SHOWN_IN_PLACE:
            self._show_error(f"{operation.capitalize()} failed", message)

    def _show_error(self, title: str, message: str) -> None:
        # One non-modal box, reused: errors must not stack up or block the window.
        if self._error_box is None:
            self._error_box = QMessageBox(QMessageBox.Icon.Warning, "kitfleet", "", parent=self)
            self._error_box.setModal(False)
        self._error_box.setText(title)
        self._error_box.setInformativeText(message)
        self._error_box.show()

    def _model_changed(self, *_: object) -> None:
        self._changed_timer.start()

    @Slot()
    def _refresh_from_model(self) -> None:
        self.tabs.show_row(self.selected_row())
        self._update_actions()
        self._update_summary()
        self._fit_columns()

    @Slot(QItemSelection, QItemSelection)
    def _on_selection(self, *_: QItemSelection) -> None:
        row = self.selected_row()
        self.tabs.show_row(row)
        self._update_actions()
        if row is not None and row.kit is not None and row.row_status == "online":
            self.bridge.load_facts(row.device_id)  # fresh facts for what the technician views

    def _update_actions(self) -> None:
        row = self.selected_row()
        self.adopt_action.setEnabled(row is not None and _adoptable(row))

    def _update_summary(self) -> None:
        rows = self.model.rows()
        adopted = [r for r in rows if r.kit is not None]
        online = sum(r.row_status == "online" for r in adopted)
        kits = f"{online} of {len(adopted)} adopted kits online" if adopted else "no kits adopted"
        self.summary.setText(f"{kits} · {len(rows) - len(adopted)} nearby not adopted")

    def _fit_columns(self) -> None:
        self.table.resizeColumnsToContents()
        header = self.table.horizontalHeader()
        for column in range(header.count() - 1):
            header.resizeSection(column, min(header.sectionSize(column), _MAX_COLUMN_WIDTH))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._error_box is not None:
            self._error_box.close()
        self.model_actions.close_dialogs()
        self.rollouts.close_dialogs()
        self.tabs.jobs.close_dialogs()
        super().closeEvent(event)
        if event.isAccepted():
            self.closed.emit()


def _adoptable(row: KitRow) -> bool:
    """Never adopted, or adopted but now presenting another identity (re-adopt on purpose)."""
    return row.kit is None or row.row_status == "identity_changed"
