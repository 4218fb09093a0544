"""The Models tab: the selected kit's model versions, with Activate, Roll back and Delete."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.wire import ModelInfo
from app.fleet.deploy import DeployOutcome
from app.fleet.precision_store import StoredChoice
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.kit_row import KitRow, age_text
from app.gui.tables.models_table import ModelsTableModel, VersionRow
from app.gui.tables.rows import row_view

__all__ = ["ModelsTab"]

QUEUED = Qt.ConnectionType.QueuedConnection


class ModelsTab(QWidget):
    status = Signal(str)  # progress for the status bar

    def __init__(self, bridge: ModelsBridge, prompts: Prompts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge, self._prompts = bridge, prompts
        self._device: str | None = None
        self._name = ""
        self._online = False
        self.model = ModelsTableModel(self)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.precision = QLabel()  # the variant choose-precision picked here per model, and why
        self.precision.setWordWrap(True)
        self.precision.setTextFormat(Qt.TextFormat.PlainText)
        self.precision.hide()
        self.table = row_view(self.model)
        self.activate_button = QPushButton("&Activate")
        self.rollback_button = QPushButton("&Roll back")
        self.delete_button = QPushButton("De&lete…")
        self.refresh_button = QPushButton("Re&load")
        self._lay_out()
        self._connect()
        self.show_row(None)

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        for button in (self.activate_button, self.rollback_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.table)
        layout.addWidget(self.precision)
        layout.addLayout(buttons)

    def _connect(self) -> None:
        self._bridge.models_loaded.connect(self._on_loaded, QUEUED)
        self._bridge.models_unavailable.connect(self._on_unavailable, QUEUED)
        self._bridge.deployed.connect(self._on_deployed, QUEUED)
        self._bridge.precision_loaded.connect(self._on_precision, QUEUED)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.model.modelReset.connect(self._update_buttons)
        self.model.dataChanged.connect(self._update_buttons)
        self.activate_button.clicked.connect(self.activate_selected)
        self.rollback_button.clicked.connect(self.rollback_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button.clicked.connect(self.reload)

    # the selected kit ---------------------------------------------------------------

    def shown_device(self) -> str | None:
        return self._device

    def show_row(self, row: KitRow | None) -> None:
        """Follow the selected kit; read its models when it is new here or came back online."""
        device = row.device_id if row is not None and row.kit is not None else None
        online = row is not None and device is not None and row.row_status == "online"
        changed, came_back = device != self._device, online and not self._online
        went_away = self._online and not online and not changed
        self._device, self._online = device, online
        self._name = row.name if row is not None else ""
        if changed:
            self.precision.hide()
            self.model.set_models([])
            self.model.set_stale(False)
            self.message.setText(_idle_text(row))
        elif went_away:
            self.message.setText(
                f"{self._name} is not online; the list is what it held when it last answered."
            )
        if row is not None and device is not None and not online:
            self._show_last_known(row)
        if online and (changed or came_back):
            self.reload()
        self._update_buttons()

    def _show_last_known(self, row: KitRow) -> None:
        """A kit that is away: the models it last told of, greyed, with the age of what is shown."""
        snapshot = row.view.snapshot if row.view is not None else None
        if snapshot is None:
            return
        first = not self.model.stale
        self.model.set_models(snapshot.models)
        self.model.set_stale(True)
        if first:  # the live list was fitted when read; this one not yet
            self.table.resizeColumnsToContents()
        self.message.setText(
            f"{self._name} is not online: greyed below are the models it held "
            f"{age_text(snapshot.taken_at)} (last known). Activate, Roll back and Delete "
            "need the kit online."
        )

    @Slot()
    def reload(self) -> None:
        if self._device is not None and self._online:
            self.message.setText(f"Reading the models on {self._name}…")
            self._bridge.load_models(self._device)

    @Slot(str, object)
    def _on_loaded(self, device_id: str, infos: list[ModelInfo]) -> None:
        if device_id != self._device:
            return
        self.model.set_models(infos)
        self.model.set_stale(False)
        self.table.resizeColumnsToContents()
        versions = sum(len(info.versions) for info in infos)
        self.message.setText(
            f"{self._name}: {_count(len(infos), 'model')}, {_count(versions, 'version')} installed"
            if infos
            else f"No models on {self._name} yet. Deploy one with Models ▸ Deploy… (Ctrl+Shift+D)."
        )

    @Slot(str, object)
    def _on_precision(self, device_id: str, choices: list[StoredChoice]) -> None:
        if device_id != self._device:
            return
        lines = [f"Precision chosen here: {c.line()}" for c in choices]
        self.precision.setText("\n".join(lines))
        self.precision.setVisible(bool(lines))

    @Slot(str, str)
    def _on_unavailable(self, device_id: str, message: str) -> None:
        if device_id == self._device:
            self.message.setText(f"Could not read the models: {message}")

    @Slot(object)
    def _on_deployed(self, outcomes: list[DeployOutcome]) -> None:
        if any(o.ok and o.kit.device_id == self._device for o in outcomes):
            self.reload()

    # actions --------------------------------------------------------------------------

    def selected(self) -> VersionRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def select_version(self, name: str, version: str) -> None:
        for position, row in enumerate(self.model.rows()):
            if row.key == (name, version):
                self.table.selectRow(position)

    @Slot()
    def activate_selected(self) -> None:
        row = self.selected()
        if self._device is not None and row is not None and not row.active:
            self.status.emit(f"Activating {row.name} {row.version} on {self._name}…")
            self._bridge.activate(self._device, row.name, row.version)

    @Slot()
    def rollback_selected(self) -> None:
        row = self.selected()
        if self._device is not None and row is not None:
            self.status.emit(f"Rolling {row.name} back on {self._name}…")
            self._bridge.rollback(self._device, row.name)

    @Slot()
    def delete_selected(self) -> None:
        row = self.selected()
        if self._device is None or row is None:
            return
        answer = self._prompts.confirm_delete(self, row.name, row.version, row.active)
        if answer is not None:
            self.status.emit(f"Deleting {row.name} {row.version} from {self._name}…")
            self._bridge.delete_version(self._device, row.name, row.version, answer == "force")

    @Slot(QItemSelection, QItemSelection)
    def _on_selection(self, *_: QItemSelection) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.selected() if self._online else None
        has_previous = row is not None and any(r.previous for r in self.model.rows() if r.name == row.name)
        self.activate_button.setEnabled(row is not None and not row.active)
        self.rollback_button.setEnabled(has_previous)
        self.delete_button.setEnabled(row is not None)
        self.refresh_button.setEnabled(self._online)


def _idle_text(row: KitRow | None) -> str:
    if row is None:
        return "Select a kit to see its models."
    if row.kit is None:
        return "This kit is not adopted yet. Adopt it to see and manage its models."
    if row.row_status != "online":
        return f"{row.name} is not online; its models are read from the kit when it answers."
    return ""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
