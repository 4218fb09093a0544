"""Quantize an FP32 model to INT8 (or FP16) on this laptop and show the side-by-side report.

The copy goes into the app's models folder unless the technician chooses another place, never
beside the source without asking (the source may sit on a read-only stick or a shared folder).
The report ends with the same recommendation `kitfleet quantize` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.bridges.models_bridge import ModelsBridge, QuantizeRequest
from app.gui.dialogs.prompts import Prompts

if TYPE_CHECKING:  # the quantizer (onnx) is imported when a model is quantized, not at start
    from app.fleet.quantize import Mode, QuantizeResult

__all__ = ["QuantizeDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection
_MODES: dict[str, Mode] = {
    "static INT8 (calibrated on images)": "static",
    "dynamic INT8 (weights only, no images needed)": "dynamic",
    "FP16 (for kits with a GPU)": "fp16",
}


class QuantizeDialog(QDialog):
    status = Signal(str)

    def __init__(self, bridge: ModelsBridge, prompts: Prompts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Quantize a model")
        self.resize(760, 520)
        self._bridge, self._prompts = bridge, prompts
        self._source: Path | None = None
        self._calibration: Path | None = None
        self._output_chosen = False  # once the technician picks or types an output, keep it
        self.last_result: QuantizeResult | None = None
        self._running = False
        self.source_label = QLabel("no model chosen")
        self.source_button = QPushButton("&Choose model…")
        self.output_edit = QLineEdit(placeholderText="where to write the INT8 model")
        self.output_button = QPushButton("C&hoose…")
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(_MODES))
        self.calibration_label = QLabel("no folder chosen")
        self.calibration_button = QPushButton("Choose &folder…")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # no steps to count: it just says "working"
        self.busy.hide()
        self.report = QPlainTextEdit(readOnly=True)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.report.setPlaceholderText("The report (size, latency, agreement with FP32) shows here.")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.run_button = self.buttons.addButton("&Quantize", QDialogButtonBox.ButtonRole.ActionRole)
        self._lay_out()
        self._connect()
        self._update()

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Input model:", _row(self.source_label, self.source_button))
        form.addRow("Output model:", _row(self.output_edit, self.output_button))
        form.addRow("Mode:", self.mode_combo)
        form.addRow("Calibration images:", _row(self.calibration_label, self.calibration_button))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.busy)
        layout.addWidget(self.report, 1)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self._bridge.quantized.connect(self._on_quantized, QUEUED)
        self._bridge.failed.connect(self._on_failed, QUEUED)
        self.source_button.clicked.connect(self.choose_source)
        self.output_button.clicked.connect(self.choose_output)
        self.calibration_button.clicked.connect(self.choose_calibration)
        self.mode_combo.currentIndexChanged.connect(self._update)
        self.output_edit.textChanged.connect(self._update)
        self.output_edit.textEdited.connect(self._on_output_typed)
        self.mode_combo.currentIndexChanged.connect(self._suggest_output)
        self.run_button.clicked.connect(self.quantize)
        self.buttons.rejected.connect(self.reject)

    @property
    def mode(self) -> Mode:
        return _MODES[self.mode_combo.currentText()]

    def set_mode(self, mode: Mode) -> None:
        self.mode_combo.setCurrentIndex(list(_MODES.values()).index(mode))

    # choosing ----------------------------------------------------------------------------

    @Slot()
    def choose_source(self) -> None:
        chosen = self._prompts.choose_model(self, self._source)
        if chosen is not None:
            self._source = chosen
            self.source_label.setText(str(chosen))
            self._suggest_output()
            self._update()

    @Slot()
    def choose_output(self) -> None:
        chosen = self._prompts.choose_output(self, self._output() or self._models_folder())
        if chosen is not None:
            self._output_chosen = True
            self.output_edit.setText(str(chosen))

    @Slot()
    def _suggest_output(self) -> None:
        """<models folder>/<source>-int8.onnx (or -fp16), until the technician chooses otherwise."""
        if self._source is None or self._output_chosen:
            return
        suffix = "fp16" if self.mode == "fp16" else "int8"
        self.output_edit.setText(str(self._models_folder() / f"{self._source.stem}-{suffix}.onnx"))

    @Slot(str)
    def _on_output_typed(self, text: str) -> None:
        self._output_chosen = bool(text.strip())

    def _models_folder(self) -> Path:
        return self._bridge.settings.models_dir

    @Slot()
    def choose_calibration(self) -> None:
        chosen = self._prompts.choose_folder(self, self._calibration)
        if chosen is not None:
            self._calibration = chosen
            self.calibration_label.setText(str(chosen))
            self._update()

    def _output(self) -> Path | None:
        text = self.output_edit.text().strip()
        return Path(text) if text else None

    # running -----------------------------------------------------------------------------

    @Slot()
    def quantize(self) -> None:
        source, output = self._source, self._output()
        if source is None or output is None or self._running:
            return
        calibration = self._calibration if self.mode == "static" else None
        self._set_running(True)
        self.report.setPlainText(
            f"Quantizing {source.name} ({self.mode}) into {output}… this takes a while "
            "on big models; the window stays usable."
        )
        self.status.emit(f"Quantizing {source.name}…")
        self._bridge.quantize(QuantizeRequest(source, output, self.mode, calibration))

    @Slot(object)
    def _on_quantized(self, result: QuantizeResult) -> None:
        self._set_running(False)
        self.last_result = result
        self.report.setPlainText(_report_text(result))
        self.status.emit(f"Quantized model written to {result.model}")

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "quantize" and self._running:
            self._set_running(False)
            self.report.setPlainText(f"Quantization failed: {message}")

    def _set_running(self, running: bool) -> None:
        self._running = running
        self.busy.setVisible(running)
        self._update()

    def _update(self) -> None:
        static = self.mode == "static"
        self.calibration_button.setEnabled(static and not self._running)
        self.calibration_label.setEnabled(static)
        ready = (
            self._source is not None
            and self._output() is not None
            and (self._calibration is not None or not static)
        )
        self.run_button.setEnabled(ready and not self._running)
        for widget in (self.source_button, self.output_button, self.output_edit, self.mode_combo):
            widget.setEnabled(not self._running)


def _row(*widgets: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout()
    layout.addWidget(widgets[0], 1)
    for widget in widgets[1:]:
        layout.addWidget(widget)
    return layout


def _report_text(result: QuantizeResult) -> str:
    what = "FP16" if result.mode == "fp16" else f"{result.mode} INT8"
    lines = [
        f"Wrote {result.model} ({what}, opset {result.source_opset} → {result.opset}"
        + (f", {result.calibration_images} calibration images)" if result.mode == "static" else ")")
    ]
    if result.manifest_path is not None and result.manifest is not None:
        lines.append(f"Manifest: {result.manifest_path} ({result.manifest.name} {result.manifest.version})")
    lines += [f"Note: {note}" for note in result.notes]
    if result.kept_float:
        kept = "; ".join(str(node) for node in result.kept_float)
        lines.append(f"Note: {len(result.kept_float)} node(s) with weights stay FP32: {kept}")
    return "\n".join([*lines, "", result.report.to_text()])  # which ends with the recommendation
