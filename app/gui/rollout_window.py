"""Rollouts in the main window (issue 21): Models ▸ Roll out… opens the Rollout dialog, and the
Rollouts dock follows every rollout live with one-click Abort."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu

from app.gui._qt import action
from app.gui.bridges.rollout_bridge import RolloutBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.dialogs.rollout_dialog import RolloutDialog
from app.gui.docks.rollouts_panel import RolloutsPanel
from app.gui.tables.kit_row import KitRow

__all__ = ["RolloutActions", "install_rollouts"]


class RolloutActions(QObject):
    def __init__(
        self, window: QMainWindow, bridge: RolloutBridge, prompts: Prompts, rows: Callable[[], list[KitRow]]
    ) -> None:
        super().__init__(window)
        self._window, self._bridge, self._prompts, self._rows = window, bridge, prompts, rows
        self.dialog: RolloutDialog | None = None
        self.panel = RolloutsPanel(bridge)
        self.panel.status.connect(self._say)
        self.dock = QDockWidget("Rollouts", window)
        self.dock.setObjectName("rollouts-dock")  # saveState() finds docks by name
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()  # the laptop layout: docks collapsed until asked for
        self.dock.visibilityChanged.connect(self._on_visible)
        self.rollout_action = action("Roll &out…", self, QKeySequence("Ctrl+Shift+O"), self.open_rollout)
        self.rollout_action.setStatusTip("Stage a model to kits: canaries first, then waves, each soaked")
        self.panel_action = self.dock.toggleViewAction()
        self.panel_action.setText("Roll&outs panel")

    @Slot()
    def open_rollout(self) -> None:
        if self.dialog is None or not self.dialog.isVisible():
            if self.dialog is not None:
                self.dialog.deleteLater()
            self.dialog = RolloutDialog(self._rows(), self._bridge, self._prompts, self._window)
            self.dialog.status.connect(self._say)
            self.dialog.started.connect(self.show_panel)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    @Slot()
    def show_panel(self) -> None:
        self.dock.show()
        self.dock.raise_()

    @Slot(bool)
    def _on_visible(self, visible: bool) -> None:
        if visible:
            self._bridge.load()

    @Slot(str)
    def _say(self, text: str) -> None:
        self._window.statusBar().showMessage(text)

    def close_dialogs(self) -> None:
        if self.dialog is not None:
            self.dialog.close()


def install_rollouts(
    window: QMainWindow,
    bridge: RolloutBridge,
    prompts: Prompts,
    rows: Callable[[], list[KitRow]],
    menu: QMenu,
) -> RolloutActions:
    """The Rollout dialog and the Rollouts dock, with their entries in the Models menu."""
    actions = RolloutActions(window, bridge, prompts, rows)
    menu.addSeparator()
    menu.addActions([actions.rollout_action, actions.panel_action])
    return actions
