"""The manifest inferred for a plain .onnx, as editable fields, each with its reason as a tooltip."""

from __future__ import annotations

from pathlib import Path
from typing import cast, get_args

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from agent.wire import Task
from app.fleet.inspection import NORMALISE_CHOICES, Inspection, NormaliseName, Overrides, parse_size

__all__ = ["ManifestForm"]

_WARNING_STYLE = "color: #8a4b00;"


class ManifestForm(QGroupBox):
    """Shown when the chosen model has no manifest; `overrides()` reads what the technician set."""

    recheck = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Inferred manifest (no manifest beside the model): check and edit", parent)
        self.name = QLineEdit()
        self.version = QLineEdit()
        self.task = QComboBox()
        self.task.addItems(list(get_args(Task)))
        self.labels = QLineEdit()
        self.input_size = QLineEdit()
        self.input_size.setPlaceholderText("height x width, e.g. 640x640")
        self.normalise = QComboBox()
        self.normalise.addItems(list(NORMALISE_CHOICES))
        self.letterbox = QCheckBox("keep the aspect ratio and pad (letterbox)")
        self.score_threshold = QDoubleSpinBox()
        self.score_threshold.setRange(0.0, 1.0)
        self.score_threshold.setSingleStep(0.05)
        self.score_threshold.setDecimals(2)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.PlainText)  # names come from the model's metadata
        self.recheck_button = QPushButton("Check &again with these fields")
        self.recheck_button.clicked.connect(self.recheck)
        self.task.currentTextChanged.connect(self._task_changed)
        self._lay_out()

    def _lay_out(self) -> None:
        form = QFormLayout(self)
        form.addRow("&Name:", self.name)
        form.addRow("&Version:", self.version)
        form.addRow("&Task:", self.task)
        form.addRow("&Labels file:", self.labels)
        form.addRow("&Input size:", self.input_size)
        form.addRow("N&ormalisation:", self.normalise)
        form.addRow("", self.letterbox)
        form.addRow("&Score threshold:", self.score_threshold)
        form.addRow(self.notes)
        form.addRow(self.recheck_button)

    def show_inspection(self, inspection: Inspection) -> None:
        """Fill the fields with what was inferred; the reasons become tooltips, warnings a note."""
        m, why = inspection.manifest, inspection.why
        self.name.setText(m.name)
        self.version.setText(m.version)
        self.task.setCurrentText(m.task)
        self.labels.clear()
        found = f"{len(m.labels)} names {why.get('labels', '')}" if m.labels else why.get("labels", "none")
        self.labels.setPlaceholderText(found)
        self.input_size.setText(f"{m.input.height}x{m.input.width}")
        self.normalise.setCurrentText(why.get("normalise_name", "unit"))
        self.letterbox.setChecked(m.input.letterbox)
        self.score_threshold.setValue(m.detection.score_threshold if m.detection else 0.25)
        for widget, field in (
            (self.name, "name"),
            (self.version, "version"),
            (self.task, "task"),
            (self.labels, "labels"),
            (self.input_size, "size"),
            (self.normalise, "normalisation"),
            (self.letterbox, "letterbox"),
            (self.score_threshold, "score threshold"),
        ):
            widget.setToolTip(why.get(field, ""))
        lines = [f"Family: {inspection.family} ({why.get('family', '')})"]
        lines += [f"⚠ {w}" for w in inspection.warnings]
        self.notes.setText("\n".join(lines))
        self.notes.setStyleSheet(_WARNING_STYLE if inspection.warnings else "")
        self._task_changed(m.task)

    def overrides(self) -> Overrides:
        """The fields as overrides; a ValueError says which field to fix."""
        size = self.input_size.text().strip()
        labels = self.labels.text().strip()
        task = cast(Task, self.task.currentText())
        return Overrides(
            name=self.name.text().strip() or None,
            version=self.version.text().strip() or None,
            task=task,
            labels=Path(labels).expanduser() if labels else None,
            input_size=parse_size(size) if size else None,
            normalise=cast(NormaliseName, self.normalise.currentText()),
            letterbox=self.letterbox.isChecked(),
            score_threshold=self.score_threshold.value() if task == "detection" else None,
        )

    def set_locked(self, locked: bool) -> None:
        for child in self.findChildren(QWidget):
            child.setEnabled(not locked)
        if not locked:
            self._task_changed(self.task.currentText())

    def _task_changed(self, task: str) -> None:
        self.score_threshold.setEnabled(task == "detection")
