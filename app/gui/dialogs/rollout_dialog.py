"""Plan a staged rollout (issue 21): the model (and its precision variants), the kits by hand or
by tag, the canaries, the waves, the thresholds, the soak and the eval dataset. Start hands the
plan to the rollout bridge; the Rollouts panel follows it from there."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.fleet.errors import Error
from app.fleet.rollout import Plan, Thresholds
from app.fleet.rollout.record import parse_max_failures, parse_waves
from app.gui.bridges.rollout_bridge import RolloutBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.kit_row import KitRow

__all__ = ["RolloutDialog"]

_ERROR_STYLE = "color: #b3261e;"
_DEVICE = Qt.ItemDataRole.UserRole


class RolloutDialog(QDialog):
    status = Signal(str)
    started = Signal(object)  # the Plan handed to the bridge

    def __init__(
        self, rows: Iterable[KitRow], bridge: RolloutBridge, prompts: Prompts, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Roll out a model")
        self.resize(640, 620)
        self._bridge, self._prompts = bridge, prompts
        self._rows = {
            r.device_id: r for r in rows if r.kit is not None and r.row_status != "identity_changed"
        }
        self.model: Path | None = None
        self.variants: list[Path] = []
        self._make_widgets()
        self._lay_out()
        self._connect()
        self._update()

    def _make_widgets(self) -> None:
        self.file_label = QLabel("no model chosen")
        self.choose_button = QPushButton("&Choose model…")
        self.precision_box = QCheckBox("Choose the &precision per kit (benchmark each variant on the kit)")
        self.variants_label = QLabel("no variants")
        self.add_variant_button = QPushButton("Add &variant…")
        self.energy_box = QCheckBox(
            "Weigh &energy, not speed (fewest joules per 1,000 inferences within the accuracy tolerance)"
        )
        self.kits = QListWidget()
        for row in self._rows.values():
            item = QListWidgetItem(f"{row.name}  ({row.row_status})")
            item.setData(_DEVICE, row.device_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            online = row.row_status == "online"
            item.setCheckState(Qt.CheckState.Checked if online else Qt.CheckState.Unchecked)
            self.kits.addItem(item)
        self.tag_edit = QLineEdit()
        self.tag_edit.setPlaceholderText("tick the kits carrying this tag")
        self.canaries = QSpinBox()
        self.canaries.setRange(1, max(1, len(self._rows)))
        self.waves = QLineEdit("25%,100%")
        self.max_failures = QLineEdit("0")
        self.latency_ratio = _spin(1.0, 100.0, 1.5, 2)
        self.accuracy_loss = _spin(0.0, 100.0, 1.0, 1)
        self.soak = QSpinBox()
        self.soak.setRange(0, 7 * 86400)
        self.soak.setValue(60)
        self.soak.setSuffix(" s")
        self.eval_edit = QLineEdit()
        self.eval_edit.setPlaceholderText("a folder of labelled images (optional)")
        self.eval_button = QPushButton("&Browse…")
        self.force_box = QCheckBox("&Force past the hardware gates (audited)")
        self.gates = QLabel()  # the ticked kits the model's gates refuse, with reasons
        self.gates.setWordWrap(True)
        self.gates.setTextFormat(Qt.TextFormat.PlainText)
        self.gates.setStyleSheet(_ERROR_STYLE)
        self.gates.hide()
        self.refused: dict[str, list[str]] = {}
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.start_button = self.buttons.addButton("&Start rollout", QDialogButtonBox.ButtonRole.ActionRole)

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Model file:", _pair(self.file_label, self.choose_button))
        form.addRow("", self.precision_box)
        form.addRow("Variants:", _pair(self.variants_label, self.add_variant_button))
        form.addRow("", self.energy_box)
        form.addRow("Kits:", self.kits)
        form.addRow("By tag:", self.tag_edit)
        form.addRow("Canaries:", self.canaries)
        form.addRow("Waves:", self.waves)
        form.addRow("Max failures:", self.max_failures)
        form.addRow("Max latency ratio:", self.latency_ratio)
        form.addRow("Max accuracy loss (points):", self.accuracy_loss)
        form.addRow("Soak:", self.soak)
        form.addRow("Eval dataset:", _pair(self.eval_edit, self.eval_button))
        form.addRow("", self.gates)
        form.addRow("", self.force_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self.choose_button.clicked.connect(self.choose_model)
        self.add_variant_button.clicked.connect(self.add_variant)
        self.eval_button.clicked.connect(self.choose_eval)
        self.tag_edit.editingFinished.connect(self.tick_tag)
        self.precision_box.toggled.connect(self._update)
        self.kits.itemChanged.connect(self._update)
        self.kits.itemChanged.connect(self._show_gates)
        self._bridge.gates.connect(self._on_gates, Qt.ConnectionType.QueuedConnection)
        self.start_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)

    # choosing --------------------------------------------------------------------------

    @Slot()
    def choose_model(self) -> None:
        chosen = self._prompts.choose_model(self, self.model.parent if self.model else None)
        if chosen is not None:
            self.model = chosen
            self.file_label.setText(str(chosen))
            self.refused = {}
            self._show_gates()
            self._bridge.check_gates(chosen)
            self._update()

    @Slot()
    def add_variant(self) -> None:
        chosen = self._prompts.choose_model(self, self.model.parent if self.model else None)
        if chosen is not None and chosen != self.model and chosen not in self.variants:
            self.variants.append(chosen)
            self.variants_label.setText(", ".join(v.name for v in self.variants))
            self._update()

    @Slot()
    def choose_eval(self) -> None:
        chosen = self._prompts.choose_images_folder(self, None)
        if chosen is not None:
            self.eval_edit.setText(str(chosen))

    @Slot()
    def tick_tag(self) -> None:
        tag = self.tag_edit.text().strip()
        if not tag:
            return
        for item in self._items():
            row = self._rows[item.data(_DEVICE)]
            carries = row.view is not None and tag in row.view.tags
            item.setCheckState(Qt.CheckState.Checked if carries else Qt.CheckState.Unchecked)

    @Slot(object, object)
    def _on_gates(self, model: Path, refused: dict[str, list[str]]) -> None:
        if model == self.model:
            self.refused = {d: reasons for d, reasons in refused.items() if d in self._rows}
            self._show_gates()

    @Slot()
    def _show_gates(self) -> None:
        lines = [
            f"{self._rows[d].name} is refused: {'; '.join(self.refused[d])}"
            for d in self.checked()
            if d in self.refused
        ]
        self.gates.setText("\n".join(lines))
        self.gates.setVisible(bool(lines))

    def checked(self) -> list[str]:
        return [i.data(_DEVICE) for i in self._items() if i.checkState() == Qt.CheckState.Checked]

    def _items(self) -> list[QListWidgetItem]:
        return [self.kits.item(n) for n in range(self.kits.count())]

    # starting --------------------------------------------------------------------------

    def plan(self) -> Plan:
        """The plan as the fields say; an `Error` names the field to fix."""
        if self.model is None:
            raise Error("choose the model to roll out")
        kits = [self._rows[d].kit for d in self.checked()]
        if not kits:
            raise Error("tick the kits to roll out to (or give a tag)")
        if self.precision_box.isChecked() and not self.variants:
            raise Error("choosing the precision needs at least one variant (e.g. the INT8 file)")
        evaluate = self.eval_edit.text().strip()
        thresholds = Thresholds(
            max_failures=parse_max_failures(self.max_failures.text()),
            max_latency_ratio=self.latency_ratio.value(),
            max_accuracy_loss=self.accuracy_loss.value(),
        )
        return Plan(
            model=self.model,
            kits=[k for k in kits if k is not None],
            canary_count=min(self.canaries.value(), len(kits)),
            waves=tuple(parse_waves(self.waves.text())),
            thresholds=thresholds,
            soak_s=float(self.soak.value()),
            eval_dataset=Path(evaluate) if evaluate else None,
            choose_precision=self.precision_box.isChecked(),
            variants=tuple(self.variants) if self.precision_box.isChecked() else (),
            prefer="energy" if self.precision_box.isChecked() and self.energy_box.isChecked() else "speed",
            force=self.force_box.isChecked(),
        )

    @Slot()
    def start(self) -> None:
        try:
            plan = self.plan()
        except Error as exc:
            self._say(str(exc), error=True)
            return
        self._say(
            f"Rolling out {plan.model.name} to {len(plan.kits)} kit(s); follow it in the Rollouts panel."
        )
        self.status.emit(f"Rollout of {plan.model.name} started")
        self._bridge.start(plan)
        self.started.emit(plan)
        self.start_button.setEnabled(False)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(_ERROR_STYLE if error else "")

    @Slot()
    def _update(self) -> None:
        self.variants_label.setEnabled(self.precision_box.isChecked())
        self.add_variant_button.setEnabled(self.precision_box.isChecked())
        self.energy_box.setEnabled(self.precision_box.isChecked())
        self.start_button.setEnabled(self.model is not None and bool(self.checked()))


def _spin(low: float, high: float, value: float, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setValue(value)
    return spin


def _pair(left: QWidget, right: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(left, 1)
    row.addWidget(right)
    return row
