"""The Try-it tab: send one image to a model on the selected kit and show what it answers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from agent.wire import ModelInfo
from app.fleet.inference import InferAnswer
from app.gui.bridges.field_bridge import FieldBridge
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.charts.picture import PictureView
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.kit_row import KitRow, age_text
from app.gui.tables.results_table import ResultsTable, summary_text
from app.gui.tabs.label_as import LabelAsBar

__all__ = ["Choice", "TryItPanel", "model_choices"]

QUEUED = Qt.ConnectionType.QueuedConnection
Choice = tuple[str, str | None]  # (model, version); None asks for the serving version


class TryItPanel(QWidget):
    status = Signal(str)

    def __init__(
        self,
        bridge: ModelsBridge,
        prompts: Prompts,
        parent: QWidget | None = None,
        field: FieldBridge | None = None,
    ) -> None:
        super().__init__(parent)
        self._bridge, self._prompts = bridge, prompts
        self._device: str | None = None
        self._online = False
        self._running = False  # one request at a time, whatever polls change meanwhile
        self._input: Path | None = None
        self._row: KitRow | None = None
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(24)
        self.input_label = QLabel("no image chosen")
        self.choose_button = QPushButton("Choose &image…")
        self.run_button = QPushButton("&Run")
        self.note = QLabel()  # why the model list is what it is (empty, or last-known)
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self._listed = False  # the kit answered a model list since it was selected
        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.picture = PictureView()
        self.results = ResultsTable()
        self.label_as = LabelAsBar(field or FieldBridge.beside(bridge))  # the image into a field dataset
        self._lay_out()
        self._connect()
        self.show_row(None)

    def _lay_out(self) -> None:
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Model:"))
        controls.addWidget(self.model_combo)
        controls.addWidget(self.choose_button)
        controls.addWidget(self.input_label, 1)
        controls.addWidget(self.run_button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.picture)
        split.addWidget(self.results)
        split.setSizes([520, 480])
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.label_as)
        layout.addWidget(self.note)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

    def _connect(self) -> None:
        self._bridge.models_loaded.connect(self._on_models, QUEUED)
        self._bridge.inferred.connect(self._on_inferred, QUEUED)
        self._bridge.failed.connect(self._on_failed, QUEUED)
        self.choose_button.clicked.connect(self.choose_input)
        self.run_button.clicked.connect(self.run)
        self.model_combo.currentIndexChanged.connect(self._update_run)
        self.label_as.status.connect(self.status)

    # the selected kit and its models ------------------------------------------------------

    def show_row(self, row: KitRow | None) -> None:
        device = row.device_id if row is not None and row.kit is not None else None
        if device != self._device:
            self._device = device
            self.model_combo.clear()
            self.results.clear_answer()
            self.summary.setText("")
            self.picture.clear_picture("Choose a model and an image, then Run.")
            self._listed = False
        self._online = row is not None and row.row_status == "online"
        self._row = row
        self.label_as.show_kit(device, self._online)
        snapshot = row.view.snapshot if row is not None and row.view is not None else None
        if snapshot is not None and (not self._online or not self._listed):
            self._fill(snapshot.models)  # last known until the kit lists them again
        self.note.setText(self._note(row, snapshot.taken_at if snapshot else None))
        self._update_run()

    def _note(self, row: KitRow | None, known_at: float | None) -> str:
        if row is None:
            return ""
        if row.kit is None:
            return "This kit is not adopted yet. Adopt it to try its models."
        if not self._online and known_at is not None:
            return (
                f"{row.name} is not online: the models listed are those it held "
                f"{age_text(known_at)} (last known). Run needs the kit online."
            )
        if not self._online:
            return f"{row.name} is not online and has not listed its models yet; they show once it answers."
        if self.model_combo.count() == 0:
            return (
                f"No models on {row.name} yet. Deploy one with Models ▸ Deploy… (Ctrl+Shift+D)."
                if self._listed
                else f"Reading the models on {row.name}…"
            )
        return ""

    @Slot(str, object)
    def _on_models(self, device_id: str, infos: list[ModelInfo]) -> None:
        if device_id != self._device:
            return
        self._listed = True
        self._fill(infos)
        if self._online:
            self.note.setText(self._note(self._row, None))
        self._update_run()

    def _fill(self, infos: list[ModelInfo]) -> None:
        """Offer `infos`, keeping the model chosen; nothing changes when the choices are the same."""
        choices = model_choices(infos)
        combo = self.model_combo
        if [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())] == choices:
            return
        keep = combo.currentData()
        combo.clear()
        for text, choice in choices:
            combo.addItem(text, choice)
        combo.setCurrentIndex(max(self._position(keep), 0))

    def select_model(self, name: str, version: str | None = None) -> None:
        self.model_combo.setCurrentIndex(self._position((name, version)))

    def _position(self, choice: Choice | None) -> int:
        # Not findData: it compares Python tuples by identity, not by value.
        combo = self.model_combo
        return next((i for i in range(combo.count()) if combo.itemData(i) == choice), -1)

    # running -------------------------------------------------------------------------------

    @Slot()
    def choose_input(self) -> None:
        start = self._input.parent if self._input is not None else None
        chosen = self._prompts.choose_input(self, start)
        if chosen is not None:
            self._input = chosen
            self.input_label.setText(chosen.name)
            self.input_label.setToolTip(str(chosen))
            self.label_as.show_input(chosen)
            self._update_run()

    @Slot()
    def run(self) -> None:
        choice: Choice | None = self.model_combo.currentData()
        if self._device is None or choice is None or self._input is None:
            return
        self._running = True
        self._update_run()
        self.status.emit(f"Running {choice[0]} on {self._input.name}…")
        self._bridge.infer(self._device, choice[0], choice[1], self._input)

    @Slot(str, object)
    def _on_inferred(self, device_id: str, answer: InferAnswer) -> None:
        self._running = False
        self._update_run()
        if device_id != self._device:
            return
        self.summary.setText(summary_text(answer))
        self.results.show_answer(answer)
        image = QImage.fromData(answer.payload)  # decoded here: QImage belongs to the GUI thread
        if image.isNull():
            self.picture.clear_picture("(the input is a tensor, not an image)")
        else:
            detections = answer.result.detections if answer.result is not None else None
            self.picture.show_picture(image, detections or [])
            self.label_as.show_detections(detections)
        self.status.emit(f"Answer from {answer.result.model if answer.result else 'the raw model'}")

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "inference":
            self._running = False
            self._update_run()
            self.summary.setText(f"Failed: {message}")

    def _update_run(self) -> None:
        ready = self._device is not None and self._online and self._input is not None
        ready = ready and not self._running
        self.run_button.setEnabled(ready and self.model_combo.currentData() is not None)


def model_choices(infos: list[ModelInfo]) -> list[tuple[str, Choice]]:
    """The serving version of each model first, then its other versions."""
    choices: list[tuple[str, Choice]] = []
    for info in sorted(infos, key=lambda i: i.name):
        if info.active_version is not None:
            choices.append((f"{info.name} {info.active_version} (serving)", (info.name, None)))
        choices += [
            (f"{info.name} {v.version}", (info.name, v.version))
            for v in info.versions
            if v.version != info.active_version
        ]
    return choices
