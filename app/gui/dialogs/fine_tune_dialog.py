"""Fine-tune…: the options of a fine-tune job on a field dataset, asked before it is submitted."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from app.fleet.field_datasets import FineTuneOptions

__all__ = ["FineTuneDialog"]


class FineTuneDialog(QDialog):
    def __init__(self, dataset: str, models: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Fine-tune on {dataset}")
        self.dataset = dataset
        self.model_combo = QComboBox()
        self.model_combo.addItems(models)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(200)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.05, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.2)
        self.min_per_class = QSpinBox()
        self.min_per_class.setRange(2, 100000)
        self.min_per_class.setValue(5)
        self.activate = QCheckBox("Activate the new version if it is better")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Fine-tune")
        ok.setEnabled(bool(models))
        form = QFormLayout(self)
        form.addRow(
            QLabel(
                "Trains a new head on the dataset's classes, on the kit, and installs it as a new version."
            )
        )
        form.addRow("Backbone model:", self.model_combo)
        form.addRow("Dataset:", QLabel(dataset))
        form.addRow("Epochs:", self.epochs)
        form.addRow("Held out for validation:", self.val_fraction)
        form.addRow("Fewest images per class:", self.min_per_class)
        form.addRow(self.activate)
        form.addRow(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def options(self) -> FineTuneOptions:
        return FineTuneOptions(
            model=self.model_combo.currentText(),
            dataset=self.dataset,
            activate=self.activate.isChecked(),
            extra={
                "epochs": self.epochs.value(),
                "val_fraction": round(self.val_fraction.value(), 3),
                "min_per_class": self.min_per_class.value(),
            },
        )
