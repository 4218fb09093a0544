"""The questions the window asks (files, folders, confirmations), behind one replaceable service.

Tests construct `Prompts(choose_model=lambda parent, start: path, ...)`; the window never
calls a modal dialog directly, so controllers stay testable headless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

__all__ = ["ChoosePath", "ConfirmDelete", "ConfirmRemoval", "DeleteAnswer", "Prompts"]

# (parent, where to start or what to suggest) -> the chosen path, or None when cancelled.
ChoosePath = Callable[[QWidget | None, Path | None], Path | None]
# "force" only ever comes from a question that said the version is serving.
DeleteAnswer = Literal["delete", "force"] | None
ConfirmDelete = Callable[[QWidget | None, str, str, bool], DeleteAnswer]
# (parent, question, what removing does) -> go ahead and delete?
ConfirmRemoval = Callable[[QWidget | None, str, str], bool]

_MODEL_FILTER = "ONNX models (*.onnx)"
_INPUT_FILTER = "Images and tensors (*.png *.jpg *.jpeg *.bmp *.webp *.npy);;All files (*)"


def _start(path: Path | None) -> str:
    return "" if path is None else str(path)


def _chosen(name: str) -> Path | None:
    return Path(name) if name else None


def choose_model(parent: QWidget | None, start: Path | None) -> Path | None:
    return _chosen(QFileDialog.getOpenFileName(parent, "Choose a model", _start(start), _MODEL_FILTER)[0])


def choose_input(parent: QWidget | None, start: Path | None) -> Path | None:
    return _chosen(QFileDialog.getOpenFileName(parent, "Choose an image", _start(start), _INPUT_FILTER)[0])


def choose_output(parent: QWidget | None, suggested: Path | None) -> Path | None:
    return _chosen(
        QFileDialog.getSaveFileName(parent, "Save the quantized model as", _start(suggested), _MODEL_FILTER)[
            0
        ]
    )


def choose_folder(parent: QWidget | None, start: Path | None) -> Path | None:
    return _chosen(QFileDialog.getExistingDirectory(parent, "Choose the calibration images", _start(start)))


def choose_images_folder(parent: QWidget | None, start: Path | None) -> Path | None:
    return _chosen(QFileDialog.getExistingDirectory(parent, "Choose the images to upload", _start(start)))


def choose_results_folder(parent: QWidget | None, start: Path | None) -> Path | None:
    return _chosen(
        QFileDialog.getExistingDirectory(parent, "Choose where to save the results", _start(start))
    )


def confirm_delete(parent: QWidget | None, name: str, version: str, serving: bool) -> DeleteAnswer:
    """Ask before deleting; a serving version needs its own, explicit button."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Delete model version",
        f"Delete {name} {version} from this kit?",
        parent=parent,
    )
    if serving:
        box.setInformativeText(
            "This is the version the kit serves. Deleting it leaves "
            f"{name} with nothing to serve until another version is activated."
        )
        confirm = box.addButton("Delete serving version", QMessageBox.ButtonRole.DestructiveRole)
    else:
        box.setInformativeText("The files are removed from the kit; deploy again to get it back.")
        confirm = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    if box.clickedButton() is not confirm:
        return None
    return "force" if serving else "delete"


def confirm_removal(parent: QWidget | None, question: str, detail: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Warning, "kitfleet", question, parent=parent)
    box.setInformativeText(detail)
    confirm = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is confirm


@dataclass(frozen=True)
class Prompts:
    choose_model: ChoosePath = choose_model
    choose_input: ChoosePath = choose_input
    choose_output: ChoosePath = choose_output
    choose_folder: ChoosePath = choose_folder
    confirm_delete: ConfirmDelete = confirm_delete
    choose_images_folder: ChoosePath = choose_images_folder
    choose_results_folder: ChoosePath = choose_results_folder
    confirm_removal: ConfirmRemoval = confirm_removal
