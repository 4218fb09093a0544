"""The Field data tab: a kit's field datasets (images per class), the inputs its models were unsure
about (thumbnails to label), and Fine-tune… to train a new version on what was labelled. While the
kit is away, the unsure inputs its receipts brought back are listed (marked "receipt"); labelling
them queues the label on the laptop, sent when the kit answers again."""

from __future__ import annotations

import re

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.wire import NAME_PATTERN, DatasetInfo, JobInfo, ModelInfo
from agent.wire.field_datasets import LABEL_PATTERN, FieldClasses, LabelledImage, UnsureItem
from app.fleet.receipts.unsure import PendingLabel, ReceivedUnsure
from app.gui.bridges.field_bridge import FieldBridge
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.dialogs.fine_tune_dialog import FineTuneDialog
from app.gui.tables.kit_row import KitRow
from app.gui.tabs.unsure_entries import ID_ROLE, mark_queued, unsure_entry

__all__ = ["FieldPanel"]

QUEUED = Qt.ConnectionType.QueuedConnection
THUMB = 72


class FieldPanel(QWidget):
    status = Signal(str)

    def __init__(self, bridge: FieldBridge, models: ModelsBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._device: str | None = None
        self._online = False
        self._models: list[str] = []
        self._received: set[str] = set()  # listed items that came by receipt (the kit is away)
        self._was_online = False
        self.dialog: FineTuneDialog | None = None
        self.dataset_combo = QComboBox()
        self.dataset_combo.setEditable(True)
        self.dataset_combo.setMinimumContentsLength(16)
        self.refresh_button = QPushButton("&Refresh")
        self.fine_tune_button = QPushButton("&Fine-tune…")
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["Label", "Images"])
        self.classes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.classes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.total = QLabel()
        self.unsure = QListWidget()
        self.unsure.setViewMode(QListWidget.ViewMode.IconMode)
        self.unsure.setIconSize(QSize(THUMB, THUMB))
        self.unsure.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.unsure.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.unsure_label = QLineEdit()
        self.unsure_label.setPlaceholderText("label for the selected inputs")
        self.label_button = QPushButton("&Label selected")
        self.delete_button = QPushButton("&Delete selected")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self._lay_out()
        self._connect(models)
        self._update()

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Field dataset:"))
        top.addWidget(self.dataset_combo)
        top.addWidget(self.refresh_button)
        top.addStretch(1)
        top.addWidget(self.fine_tune_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.classes, 1)
        left_layout.addWidget(self.total)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(QLabel("Inputs the models were unsure about (newest first):"))
        right_layout.addWidget(self.unsure, 1)
        actions = QHBoxLayout()
        actions.addWidget(self.unsure_label, 1)
        actions.addWidget(self.label_button)
        actions.addWidget(self.delete_button)
        right_layout.addLayout(actions)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([300, 600])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addWidget(split, 1)

    def _connect(self, models: ModelsBridge) -> None:
        bridge = self._bridge
        bridge.datasets_loaded.connect(self._on_datasets, QUEUED)
        bridge.classes_loaded.connect(self._on_classes, QUEUED)
        bridge.labelled.connect(self._on_labelled, QUEUED)
        bridge.unsure_loaded.connect(self._on_unsure, QUEUED)
        bridge.unsure_picture.connect(self._on_picture, QUEUED)
        bridge.unsure_labelled.connect(self._on_unsure_labelled, QUEUED)
        bridge.received_loaded.connect(self._on_received, QUEUED)
        bridge.unsure_queued.connect(self._on_queued, QUEUED)
        bridge.fine_tune_submitted.connect(self._on_submitted, QUEUED)
        models.models_loaded.connect(self._on_models, QUEUED)
        self.refresh_button.clicked.connect(self.refresh)
        self.fine_tune_button.clicked.connect(self.ask_fine_tune)
        self.label_button.clicked.connect(self.label_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.dataset_combo.currentTextChanged.connect(self._dataset_changed)
        self.unsure.itemSelectionChanged.connect(self._update)
        self.unsure_label.textChanged.connect(self._update)

    # the selected kit ---------------------------------------------------------------------

    def show_row(self, row: KitRow | None) -> None:
        device = row.device_id if row is not None and row.kit is not None else None
        online = row is not None and row.row_status == "online"
        changed = device != self._device
        came_online = online and not self._online
        self._was_online = self._online
        self._device, self._online = device, online
        if changed:
            self.dataset_combo.clear()
            self.classes.setRowCount(0)
            self.total.setText("")
            self.unsure.clear()
            self._models = []
        went_away = self._was_online and not online
        if device is not None and online and (changed or came_online):
            self._bridge.load_datasets(device)
            self._bridge.load_unsure(device)
        elif device is not None and not online and (changed or went_away):
            self._bridge.load_received(device)
        self.note.setText(
            ""
            if online or device is None
            else "The kit is not online: listed are the unsure inputs its receipts brought back; "
            "labels given to them are sent once it answers."
        )
        self._update()

    @Slot()
    def refresh(self) -> None:
        if self._device is None or not self._online:
            return
        self._bridge.load_datasets(self._device)
        self._bridge.load_unsure(self._device)
        if self._dataset():
            self._bridge.load_classes(self._device, self._dataset())

    @Slot(str, object)
    def _on_models(self, device_id: str, infos: list[ModelInfo]) -> None:
        if device_id == self._device:
            # a fine-tune extends a classifier's final layer: only serving classifiers are offered
            self._models = sorted(
                i.name for i in infos if i.active_version is not None and i.task == "classification"
            )
            self._update()

    @Slot(str, object)
    def _on_datasets(self, device_id: str, infos: list[DatasetInfo]) -> None:
        if device_id != self._device:
            return
        chosen = self._dataset()
        for info in infos:
            if self.dataset_combo.findText(info.name) < 0:
                self.dataset_combo.addItem(info.name)
        self.dataset_combo.setCurrentText(chosen or (infos[0].name if infos else ""))
        if self._dataset():
            self._bridge.load_classes(device_id, self._dataset())

    @Slot(str)
    def _dataset_changed(self, text: str) -> None:
        if self._device is not None and self._online and self.dataset_combo.findText(text) >= 0:
            self._bridge.load_classes(self._device, text)
        self._update()

    @Slot(str, object)
    def _on_classes(self, device_id: str, classes: FieldClasses) -> None:
        if device_id != self._device or classes.dataset != self._dataset():
            return
        self.classes.setRowCount(len(classes.classes))
        for row, count in enumerate(classes.classes):
            self.classes.setItem(row, 0, QTableWidgetItem(count.label))
            number = QTableWidgetItem(str(count.images))
            number.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.classes.setItem(row, 1, number)
        self.total.setText(f"{classes.images} image(s) in {len(classes.classes)} class(es)")

    @Slot(str, object)
    def _on_labelled(self, device_id: str, answer: LabelledImage) -> None:
        """An image labelled from Try-it: the counts follow."""
        if device_id == self._device:
            if self.dataset_combo.findText(answer.dataset) < 0:
                self.dataset_combo.addItem(answer.dataset)
            if answer.dataset == self._dataset() or not self._dataset():
                self.dataset_combo.setCurrentText(answer.dataset)
                self._bridge.load_classes(device_id, answer.dataset)

    # the unsure buffer --------------------------------------------------------------------

    @Slot(str, object)
    def _on_unsure(self, device_id: str, items: list[UnsureItem]) -> None:
        if device_id != self._device:
            return
        self.unsure.clear()
        self._received = set()
        for item in items:
            self.unsure.addItem(unsure_entry(item))
        self._update()

    @Slot(str, object)
    def _on_received(self, device_id: str, held: list[ReceivedUnsure]) -> None:
        if device_id != self._device or self._online:
            return
        self.unsure.clear()
        self._received = {r.item.id for r in held}
        for received in held:
            entry = unsure_entry(received.item, " (receipt)")
            entry.setToolTip(entry.toolTip() + "\nfrom a receipt: the kit is away")
            self.unsure.addItem(entry)
            if received.queued is not None:
                mark_queued(entry, received.queued)
        self._update()

    @Slot(str, str, object)
    def _on_queued(self, device_id: str, item_id: str, pending: PendingLabel) -> None:
        entry = self._entry(item_id) if device_id == self._device else None
        if entry is not None:
            mark_queued(entry, pending)
            self.status.emit(f"Labelled {pending.label}: sent to {pending.dataset} once the kit answers")

    def received_ids(self) -> list[str]:
        return [i for i in self.unsure_ids() if i in self._received]

    def entry_text(self, item_id: str) -> str:
        entry = self._entry(item_id)
        return entry.text() if entry is not None else ""

    @Slot(str, str, bytes)
    def _on_picture(self, device_id: str, item_id: str, data: bytes) -> None:
        entry = self._entry(item_id) if device_id == self._device else None
        image = QImage.fromData(data)  # here, on the GUI thread
        if entry is not None and not image.isNull():
            thumb = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio)
            entry.setIcon(QIcon(QPixmap.fromImage(thumb)))

    def unsure_ids(self) -> list[str]:
        return [str(self.unsure.item(i).data(ID_ROLE)) for i in range(self.unsure.count())]

    def has_picture(self, item_id: str) -> bool:
        entry = self._entry(item_id)
        return entry is not None and not entry.icon().isNull()

    @Slot()
    def label_selected(self) -> None:
        if self._device is None or not self._can_label():
            return
        for entry in self.unsure.selectedItems():
            item_id = str(entry.data(ID_ROLE))
            if self._online:
                self._bridge.label_unsure(self._device, item_id, self._dataset(), self._label())
            else:
                self._bridge.queue_label(self._device, item_id, self._dataset(), self._label())

    @Slot()
    def delete_selected(self) -> None:
        if self._device is None:
            return
        for entry in self.unsure.selectedItems():
            self._bridge.delete_unsure(self._device, str(entry.data(ID_ROLE)))

    @Slot(str, str, object)
    def _on_unsure_labelled(self, device_id: str, item_id: str, moved: LabelledImage | None) -> None:
        entry = self._entry(item_id) if device_id == self._device else None
        if entry is not None:
            self.unsure.takeItem(self.unsure.row(entry))
        if moved is not None and device_id == self._device:
            self.status.emit(f"Moved into {moved.dataset}: {moved.images} image(s) of {moved.label}")
            self._on_labelled(device_id, moved)

    def _entry(self, item_id: str) -> QListWidgetItem | None:
        return next(
            (
                self.unsure.item(i)
                for i in range(self.unsure.count())
                if self.unsure.item(i).data(ID_ROLE) == item_id
            ),
            None,
        )

    # fine-tune ----------------------------------------------------------------------------

    @Slot()
    def ask_fine_tune(self) -> None:
        """Open the options (not modal: the window keeps polling); OK submits the job."""
        if self._device is None or not self._dataset():
            return
        self.dialog = FineTuneDialog(self._dataset(), self._models, self)
        device, dialog = self._device, self.dialog
        dialog.accepted.connect(lambda: self._bridge.fine_tune(device, dialog.options()))
        dialog.open()

    @Slot(str, object)
    def _on_submitted(self, device_id: str, job: JobInfo) -> None:
        if device_id == self._device:
            self.note.setText(f"Fine-tune job {job.job_id[:8]} queued: the Jobs tab follows it.")
            self.status.emit(self.note.text())

    # state -------------------------------------------------------------------------------

    def _dataset(self) -> str:
        return self.dataset_combo.currentText().strip()

    def _label(self) -> str:
        return self.unsure_label.text().strip()

    def _can_label(self) -> bool:
        names = re.fullmatch(NAME_PATTERN, self._dataset()) and re.fullmatch(LABEL_PATTERN, self._label())
        selected = self.unsure.selectedItems()
        reachable = self._online or all(e.data(ID_ROLE) in self._received for e in selected)
        return bool(names and selected and reachable)

    def _update(self) -> None:
        ready = self._device is not None and self._online
        self.refresh_button.setEnabled(ready)
        self.fine_tune_button.setEnabled(ready and bool(re.fullmatch(NAME_PATTERN, self._dataset())))
        self.label_button.setEnabled(self._can_label())
        self.delete_button.setEnabled(ready and bool(self.unsure.selectedItems()))
