"""Ask for the pairing code a kit shows, and whether this laptop needs admin rights there,
behind a prompt function tests can replace."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.wire import PAIR_CODE_LENGTH, Scope, format_device_id
from app.gui.tables.kit_row import COLUMNS, KitRow, cell_text

__all__ = ["AdoptAnswer", "AdoptDialog", "CodePrompt", "ask_pairing_code", "parse_pair_code"]


@dataclass(frozen=True)
class AdoptAnswer:
    """What the technician entered: the kit's code, and the scope this laptop asks for."""

    code: str
    scope: Scope = "operator"


# (parent, kit) -> the answer, or None when the technician cancels.
CodePrompt = Callable[[QWidget | None, KitRow], AdoptAnswer | None]
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
        intro = QLabel(
            "Enter the pairing code this kit shows on its console or label "
            "(or run <code>kitfleet-agent pair-code</code> on it)."
        )
        intro.setWordWrap(True)
        self.code_edit = QLineEdit(placeholderText="XXXX-XXXX")
        self.hint = QLabel(_HINT)
        # Off by default: a day's work (models, jobs, inference) needs operator; a laptop that
        # holds admin everywhere is one stolen laptop away from every kit's commands and tokens.
        self.admin_box = QCheckBox("Admin rights on this kit")
        self.admin_box.setToolTip(
            "Also lets this laptop run command jobs, manage the kit's "
            "tokens and read its audit log. Leave off for everyday work."
        )
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button.setText("Adopt")
        form = QFormLayout()
        form.addRow("Kit:", QLabel(row.name))
        form.addRow("Device ID:", QLabel(format_device_id(row.device_id, groups=8)))
        form.addRow("Address:", QLabel(cell_text(row, COLUMNS.index("Address"))))
        form.addRow("Pairing code:", self.code_edit)
        form.addRow("", self.hint)
        form.addRow("", self.admin_box)
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

    def answer(self) -> AdoptAnswer | None:
        """The code and the scope asked for, or None while the code is not valid."""
        code = self.code()
        if code is None:
            return None
        return AdoptAnswer(code, "admin" if self.admin_box.isChecked() else "operator")

    def _validate(self, text: str) -> None:
        valid = parse_pair_code(text) is not None
        self.ok_button.setEnabled(valid)
        # Say what is wrong only once something was typed: an empty field is not an error.
        self.hint.setStyleSheet("" if valid or not text.strip() else "color: #b3261e;")


def ask_pairing_code(parent: QWidget | None, row: KitRow) -> AdoptAnswer | None:
    """The real prompt: a modal dialog (its own event loop keeps the window responsive)."""
    dialog = AdoptDialog(row, parent)
    try:
        return dialog.answer() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
