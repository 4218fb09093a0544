"""The Models menu: Deploy… and Quantize…, each opening its (non-modal) dialog."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QWidget

from app.gui._qt import action
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.dialogs.deploy_dialog import DeployDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.dialogs.quantize_dialog import QuantizeDialog
from app.gui.tables.kit_row import KitRow

__all__ = ["ModelActions"]

D = TypeVar("D", DeployDialog, QuantizeDialog)


class ModelActions(QObject):
    status = Signal(str)  # what the dialogs report, for the window's status bar

    def __init__(
        self, window: QWidget, bridge: ModelsBridge, prompts: Prompts, rows: Callable[[], list[KitRow]]
    ) -> None:
        super().__init__(window)
        self._window, self._bridge, self._prompts, self._rows = window, bridge, prompts, rows
        self.deploy_dialog: DeployDialog | None = None
        self.quantize_dialog: QuantizeDialog | None = None
        self.deploy_action = action("&Deploy…", self, QKeySequence("Ctrl+Shift+D"), self.open_deploy)
        self.deploy_action.setStatusTip("Send a model package to several kits at once")
        self.quantize_action = action("&Quantize…", self, QKeySequence(), self.open_quantize)
        self.quantize_action.setStatusTip("Make an INT8 copy of an FP32 model, with a report")

    @Slot()
    def open_deploy(self) -> None:
        # A fresh dialog each time one is not open: the kits and their states change.
        if self.deploy_dialog is None or not self.deploy_dialog.isVisible():
            self.deploy_dialog = self._replace(
                self.deploy_dialog, DeployDialog(self._rows(), self._bridge, self._prompts, self._window)
            )
        _bring_up(self.deploy_dialog)

    @Slot()
    def open_quantize(self) -> None:
        if self.quantize_dialog is None:  # kept: it remembers the files chosen last time
            self.quantize_dialog = self._replace(
                None, QuantizeDialog(self._bridge, self._prompts, self._window)
            )
        _bring_up(self.quantize_dialog)

    def close_dialogs(self) -> None:
        for dialog in (self.deploy_dialog, self.quantize_dialog):
            if dialog is not None:
                dialog.close()

    def _replace(self, old: QDialog | None, new: D) -> D:
        if old is not None:
            old.deleteLater()
        new.status.connect(self.status)
        return new


def _bring_up(dialog: QDialog) -> None:
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
