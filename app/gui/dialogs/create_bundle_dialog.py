"""Create Bundle: pick kits (or tags), models, datasets and job specs and an expiry; the signed file
is written on the bridge's loop (`BundlesBridge.create`, the same core as `kitfleet bundle
create`), and the dialog shows what was written or why not."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.fleet.inventory import Kit
from app.fleet.snapshot import parse_tags
from app.gui.bridges.bundles_bridge import BundleRequest, BundlesBridge

if TYPE_CHECKING:
    from app.fleet.bundles.create import Made

__all__ = ["CreateBundleDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection
EXPIRIES = ("14d", "7d", "30d", "1d", "never")


class PathList(QWidget):
    """A list of files or folders with Add… and Remove buttons."""

    def __init__(self, what: str, folders: bool, pattern: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._what, self._folders, self._pattern = what, folders, pattern
        self.list = QListWidget()
        self.list.setMaximumHeight(80)
        add, remove = QPushButton("Add…"), QPushButton("Remove")
        add.clicked.connect(self._add)
        remove.clicked.connect(self._remove)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).text()) for i in range(self.list.count())]

    def add(self, path: Path) -> None:
        if path not in self.paths():
            self.list.addItem(str(path))

    @Slot()
    def _add(self) -> None:
        if self._folders:
            folder = QFileDialog.getExistingDirectory(self, self._what)
            chosen = [folder] if folder else []
        else:
            chosen, _ = QFileDialog.getOpenFileNames(self, self._what, "", self._pattern)
        for path in chosen:
            self.add(Path(path))

    @Slot()
    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


class CreateBundleDialog(QDialog):
    def __init__(self, bridge: BundlesBridge, kits: list[Kit], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Create Bundle")
        self.resize(720, 560)
        self._bridge = bridge
        self.kits = QListWidget()
        for kit in kits:
            item = QListWidgetItem(kit.name)
            item.setData(Qt.ItemDataRole.UserRole, kit.device_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.kits.addItem(item)
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("and every kit with one of these tags, comma-separated")
        self.models = PathList("Models", False, "ONNX models (*.onnx)")
        self.datasets = PathList("Dataset folder", True)
        self.jobs = PathList("Job specs", False, "Job specs (*.json)")
        self.expires = QComboBox()
        self.expires.setEditable(True)
        self.expires.addItems(EXPIRIES)
        self.out = QLineEdit()
        self.out.setPlaceholderText("where to write the bundle (.kfb), e.g. on the USB stick")
        browse = QPushButton("Save as…")
        browse.clicked.connect(self._pick_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out)
        out_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Kits", self.kits)
        form.addRow("Tags", self.tags)
        form.addRow("Models", self.models)
        form.addRow("Datasets", self.datasets)
        form.addRow("Jobs", self.jobs)
        form.addRow("Expires after", self.expires)
        form.addRow("Bundle file", out_row)
        self.state = QLabel("On each kit: kitfleet-agent import FILE.kfb (no network needed).")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        self.create_button = QPushButton("Create")
        self.create_button.setDefault(True)
        self.create_button.clicked.connect(self.run)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.state)
        layout.addWidget(self.create_button, alignment=Qt.AlignmentFlag.AlignRight)
        bridge.created.connect(self._created, QUEUED)
        bridge.create_failed.connect(self._failed, QUEUED)

    def request(self) -> BundleRequest:
        checked = [self.kits.item(i) for i in range(self.kits.count())]
        return BundleRequest(
            out=Path(self.out.text().strip()),
            device_ids=[
                str(i.data(Qt.ItemDataRole.UserRole))
                for i in checked
                if i.checkState() == Qt.CheckState.Checked
            ],
            tags=parse_tags(self.tags.text()),
            models=self.models.paths(),
            datasets=self.datasets.paths(),
            jobs=self.jobs.paths(),
            expires=self.expires.currentText(),
        )

    @Slot()
    def run(self) -> None:
        request = self.request()
        if not self.out.text().strip():
            self.state.setText("Choose where to write the bundle first.")
            return
        self.create_button.setEnabled(False)
        self.state.setText(f"Checking the models and writing {request.out.name}…")
        self._bridge.create(request)

    @Slot(object)
    def _created(self, made: Made) -> None:
        self.create_button.setEnabled(True)
        self.state.setText(
            f"Wrote {made.path} ({made.actions} actions, sequence {made.sequence}). "
            f"On each kit: kitfleet-agent import {made.path.name}"
        )

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.create_button.setEnabled(True)
        self.state.setText(f"Not written: {message}")

    @Slot()
    def _pick_out(self) -> None:
        chosen, _ = QFileDialog.getSaveFileName(self, "Bundle file", "bundle.kfb", "Bundles (*.kfb)")
        if chosen:
            self.out.setText(chosen)
