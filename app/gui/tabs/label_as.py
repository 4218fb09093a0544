"""Try-it's "Label as…" row: add the picture being tried to a field dataset on the kit.

The dataset and the label are picked from what the kit has or typed anew; the picture goes
through the field bridge, so the window never waits for the kit.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

from agent.wire import NAME_PATTERN, DatasetInfo, Detection
from agent.wire.field_datasets import LABEL_PATTERN, FieldClasses, LabelledImage
from app.gui.bridges.field_bridge import FieldBridge

__all__ = ["LabelAsBar"]

QUEUED = Qt.ConnectionType.QueuedConnection
_PICTURES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class LabelAsBar(QWidget):
    status = Signal(str)

    def __init__(self, bridge: FieldBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._device: str | None = None
        self._online = False
        self._input: Path | None = None
        self._sending = False
        self._box: tuple[float, float, float, float] | None = None  # the top detection's
        self.crop_check = QCheckBox("only the top box")
        self.crop_check.setToolTip("Keep the part of the image inside the detector's top box")
        self.crop_check.setEnabled(False)
        self.dataset_combo = _editable("field dataset, e.g. yard")
        self.label_combo = _editable("label, e.g. fox")
        self.label_button = QPushButton("&Label as…")
        self.label_button.setToolTip("Add the image to the field dataset on the kit, under this label")
        self.result = QLabel()
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Dataset:"))
        layout.addWidget(self.dataset_combo)
        layout.addWidget(QLabel("Label:"))
        layout.addWidget(self.label_combo)
        layout.addWidget(self.crop_check)
        layout.addWidget(self.label_button)
        layout.addWidget(self.result, 1)
        bridge.labelled.connect(self._on_labelled, QUEUED)
        bridge.datasets_loaded.connect(self._on_datasets, QUEUED)
        bridge.classes_loaded.connect(self._on_classes, QUEUED)
        bridge.failed.connect(self._on_failed, QUEUED)
        self.label_button.clicked.connect(self.label)
        self.dataset_combo.currentTextChanged.connect(self._dataset_changed)
        self.label_combo.currentTextChanged.connect(self._update)
        self._update()

    def show_kit(self, device_id: str | None, online: bool) -> None:
        if device_id != self._device:
            self._device = device_id
            self.result.setText("")
            self.dataset_combo.clear()
            self.label_combo.clear()
            if device_id is not None and online:
                self._bridge.load_datasets(device_id)
        self._online = online
        self._update()

    def show_input(self, path: Path | None) -> None:
        self._input = path
        self.show_detections(None)  # a new picture: no box yet
        self._update()

    def show_detections(self, detections: list[Detection] | None) -> None:
        """The answer for the picture: a detector's top box can be labelled alone."""
        self._box = detections[0].box if detections else None
        self.crop_check.setEnabled(self._box is not None)
        if self._box is None:
            self.crop_check.setChecked(False)

    @Slot()
    def label(self) -> None:
        if not self._ready() or self._device is None or self._input is None:
            return
        self._sending = True
        self._update()
        dataset, label = self._dataset(), self._label()
        self.status.emit(f"Adding {self._input.name} to {dataset} as {label}…")
        box = self._box if self.crop_check.isChecked() else None
        self._bridge.label_file(self._device, dataset, label, self._input, box)

    @Slot(str, object)
    def _on_labelled(self, device_id: str, answer: LabelledImage) -> None:
        if device_id != self._device:
            return
        self._sending = False
        verb = "Added to" if answer.added else "Already in"
        self.result.setText(f"{verb} {answer.dataset}: {answer.images} image(s) of {answer.label}")
        self.status.emit(self.result.text())
        if self.label_combo.findText(answer.label) < 0:
            self.label_combo.addItem(answer.label)
        self._update()

    @Slot(str, object)
    def _on_datasets(self, device_id: str, infos: list[DatasetInfo]) -> None:
        if device_id != self._device:
            return
        typed = self._dataset()
        for info in infos:
            if self.dataset_combo.findText(info.name) < 0:
                self.dataset_combo.addItem(info.name)
        self.dataset_combo.setCurrentText(typed or (infos[0].name if infos else ""))

    @Slot(str, object)
    def _on_classes(self, device_id: str, classes: FieldClasses) -> None:
        if device_id != self._device or classes.dataset != self._dataset():
            return
        typed = self._label()
        self.label_combo.clear()
        self.label_combo.addItems([c.label for c in classes.classes])
        self.label_combo.setCurrentText(typed)

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "label" and self._sending:
            self._sending = False
            self.result.setText(f"Not labelled: {message}")
            self._update()

    @Slot(str)
    def _dataset_changed(self, text: str) -> None:
        known = self.dataset_combo.findText(text.strip()) >= 0  # a new name has no classes to read
        if self._device is not None and self._online and known:
            self._bridge.load_classes(self._device, text.strip())
        self._update()

    def _dataset(self) -> str:
        return self.dataset_combo.currentText().strip()

    def _label(self) -> str:
        return self.label_combo.currentText().strip()

    def _ready(self) -> bool:
        picture = self._input is not None and self._input.suffix.lower() in _PICTURES
        names = bool(
            re.fullmatch(NAME_PATTERN, self._dataset()) and re.fullmatch(LABEL_PATTERN, self._label())
        )
        return self._device is not None and self._online and picture and names and not self._sending

    def _update(self) -> None:
        self.label_button.setEnabled(self._ready())


def _editable(hint: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.setMinimumContentsLength(14)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    line = combo.lineEdit()
    if line is not None:
        line.setPlaceholderText(hint)
    return combo
