"""The Rollouts panel (issue 21): every rollout with its phase, the chosen one's kits with their
states, its steps as they happen, and one-click Abort, Pause and Resume. It follows the rollout
bridge's signals only; the engine runs on the bridge's loop."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.fleet.rollout import FINISHED, Event, KitState, Rollout
from app.gui.bridges.rollout_bridge import RolloutBridge

__all__ = ["RolloutsPanel", "kit_cells", "rollout_line"]

QUEUED = Qt.ConnectionType.QueuedConnection
_ID = Qt.ItemDataRole.UserRole
_HEADERS = ("Wave", "Kit", "State", "Version", "Detail")
_LOG_LINES = 500


class RolloutsPanel(QWidget):
    status = Signal(str)

    def __init__(self, bridge: RolloutBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._rollouts: dict[str, Rollout] = {}
        self.summary = QLabel("No rollouts yet: Models ▸ Roll out…")
        self.list = QListWidget()
        self.kits = QTableWidget(0, len(_HEADERS))
        self.kits.setHorizontalHeaderLabels(list(_HEADERS))
        self.kits.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.kits.verticalHeader().hide()
        self.kits.horizontalHeader().setStretchLastSection(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(_LOG_LINES)
        self.abort_button = QPushButton("&Abort")
        self.abort_button.setToolTip("Stop the rollout and roll back every kit it activated")
        self.pause_button = QPushButton("&Pause")
        self.resume_button = QPushButton("Res&ume")
        self.reload_button = QPushButton("Re&load")
        self._lay_out()
        self._connect()
        self._update_buttons()

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        for button in (self.abort_button, self.pause_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.reload_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.kits, 2)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)

    def _connect(self) -> None:
        self._bridge.listed.connect(self.show_rollouts, QUEUED)
        self._bridge.changed.connect(self.show_rollout, QUEUED)
        self._bridge.step.connect(self.show_event, QUEUED)
        self.list.currentItemChanged.connect(self._on_current)
        self.abort_button.clicked.connect(self.abort_selected)
        self.pause_button.clicked.connect(self.pause_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.reload_button.clicked.connect(self._bridge.load)

    # what the bridge says ------------------------------------------------------------

    @Slot(object)
    def show_rollouts(self, rollouts: list[Rollout]) -> None:
        for rollout in reversed(rollouts):  # newest first, as listed
            self.show_rollout(rollout)

    @Slot(object)
    def show_rollout(self, rollout: Rollout) -> None:
        self._rollouts[rollout.rollout_id] = rollout
        item = self._item(rollout.rollout_id)
        if item is None:
            item = QListWidgetItem()
            item.setData(_ID, rollout.rollout_id)
            self.list.insertItem(0, item)
            if self.list.currentItem() is None:
                self.list.setCurrentItem(item)
        item.setText(rollout_line(rollout))
        if self.selected_id() == rollout.rollout_id:
            self._show_kits(rollout)
        live = sum(r.phase not in FINISHED for r in self._rollouts.values())
        self.summary.setText(f"{len(self._rollouts)} rollout(s), {live} not finished")
        self._update_buttons()

    @Slot(object)
    def show_event(self, event: Event) -> None:
        who = f"{event.kit}: " if event.kit else ""
        self.log.appendPlainText(f"{event.rollout_id}  {who}{event.text}")

    # the technician's buttons ----------------------------------------------------------

    def selected_id(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(_ID)) if item is not None else None

    def selected(self) -> Rollout | None:
        chosen = self.selected_id()
        return self._rollouts.get(chosen) if chosen else None

    @Slot()
    def abort_selected(self) -> None:
        rollout = self.selected()
        if rollout is not None and rollout.phase not in FINISHED:
            self.status.emit(f"Aborting rollout {rollout.rollout_id}: rolling back what it activated…")
            self._bridge.abort(rollout.rollout_id)
            self.abort_button.setEnabled(False)

    @Slot()
    def pause_selected(self) -> None:
        rollout = self.selected()
        if rollout is not None and rollout.phase not in FINISHED:
            self._bridge.pause(rollout.rollout_id)

    @Slot()
    def resume_selected(self) -> None:
        rollout = self.selected()
        if rollout is not None and rollout.phase not in FINISHED:
            self._bridge.resume(rollout.rollout_id)

    def _on_current(self, *_: object) -> None:
        rollout = self.selected()
        if rollout is not None:
            self._show_kits(rollout)
        self._update_buttons()

    def _show_kits(self, rollout: Rollout) -> None:
        kits = sorted(rollout.kits, key=lambda k: (k.wave, k.name))
        self.kits.setRowCount(len(kits))
        for position, kit in enumerate(kits):
            for column, text in enumerate(kit_cells(kit)):
                self.kits.setItem(position, column, QTableWidgetItem(text))

    def _item(self, rollout_id: str) -> QListWidgetItem | None:
        for n in range(self.list.count()):
            item = self.list.item(n)
            if item.data(_ID) == rollout_id:
                return item
        return None

    def _update_buttons(self) -> None:
        rollout = self.selected()
        live = rollout is not None and rollout.phase not in FINISHED
        self.abort_button.setEnabled(live)
        self.pause_button.setEnabled(live)
        self.resume_button.setEnabled(live)


def rollout_line(r: Rollout) -> str:
    """'ro-1a2b3c4d  digits-cnn 1.0  soaking wave 0' (and why it stopped, when it did)."""
    where = f"{r.phase} wave {r.wave}" if r.phase in ("activating", "soaking") else r.phase
    return f"{r.rollout_id}  {r.model} {r.version}  {where}" + (f"  ({r.reason})" if r.reason else "")


def kit_cells(k: KitState) -> tuple[str, str, str, str, str]:
    return ("canary" if k.wave == 0 else f"wave {k.wave}", k.name, k.state, k.version, k.detail)
