"""Ask for the pairing code a kit shows, behind a prompt function tests can replace."""

from __future__ import annotations

import re
from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.api.schemas import PAIR_CODE_LENGTH, format_device_id
from app.gui.kit_row import COLUMNS, KitRow, cell_text

__all__ = ["AdoptDialog", "CodePrompt", "ask_pairing_code", "parse_pair_code"]

# (parent, kit) -> the code, or None when the technician cancels.
CodePrompt = Callable[[QWidget | None, KitRow], str | None]
_CODE = re.compile(f"[A-Z0-9]{{{PAIR_CODE_LENGTH}}}")
_HINT = f"{PAIR_CODE_LENGTH} letters or digits; dashes and spaces are ignored"


def parse_pair_code(text: str) -> str | None:
    """The code as the kit expects it, or None while it is not a valid code."""
    code = re.sub(r"[\s-]", "", text).upper()
    return code if _CODE.fullmatch(code) else None


class AdoptDialog(QDialog):
    def __init__(self, row: KitRow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Adopt {row.name}")
        intro = QLabel("Enter the pairing code this kit shows on its console or label "
                       "(or run <code>kitfleet-agent pair-code</code> on it).")
        intro.setWordWrap(True)
        self.code_edit = QLineEdit(placeholderText="XXXX-XXXX")
        self.hint = QLabel(_HINT)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.setText("Adopt")
        form = QFormLayout()
        form.addRow("Kit:", QLabel(row.name))
        form.addRow("Device ID:", QLabel(format_device_id(row.device_id, groups=8)))
        form.addRow("Address:", QLabel(cell_text(row, COLUMNS.index("Address"))))
        form.addRow("Pairing code:", self.code_edit)
        form.addRow("", self.hint)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.code_edit.textChanged.connect(self._validate)
        self._validate(self.code_edit.text())

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def code(self) -> str | None:
        return parse_pair_code(self.code_edit.text())

    def _validate(self, text: str) -> None:
        valid = parse_pair_code(text) is not None
        self.ok_button.setEnabled(valid)
        # Say what is wrong only once something was typed: an empty field is not an error.
        self.hint.setStyleSheet("" if valid or not text.strip() else "color: #b3261e;")


def ask_pairing_code(parent: QWidget | None, row: KitRow) -> str | None:
    """The real prompt: a modal dialog (its own event loop keeps the window responsive)."""
    dialog = AdoptDialog(row, parent)
    try:
        return dialog.code() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
