"""Deploy one model to several kits at once, with a progress bar per kit; a plain .onnx has its
manifest inferred and shown as editable fields."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.fleet.deploy import DeployOutcome, Package, Progress
from app.fleet.inspection import Overrides
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.dialogs.manifest_form import ManifestForm
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.deploy_kits import DeployKitsTable
from app.gui.tables.kit_row import KitRow
from app.gui.tables.models_table import size_text

__all__ = ["DeployDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection
_ERROR_STYLE = "color: #b3261e;"
_ADVICE_STYLE = (
    "background: #e7f1ff; color: #084298; border: 1px solid #b6d4fe; border-radius: 3px; padding: 4px 8px;"
)


class DeployDialog(QDialog):
    status = Signal(str)

    def __init__(
        self, rows: Iterable[KitRow], bridge: ModelsBridge, prompts: Prompts, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Deploy a model")
        self.resize(760, 480)
        self._bridge, self._prompts = bridge, prompts
        self._model: Path | None = None
        self._package: Package | None = None
        self._running = False
        self.file_label = QLabel("no model chosen")
        self.choose_button = QPushButton("&Choose model…")
        self.package = QLabel()
        self.package.setWordWrap(True)
        self.package.setTextFormat(Qt.TextFormat.PlainText)  # messages may hold "<stem>"
        self.form = ManifestForm()
        self.form.hide()
        adoptable = [r for r in rows if r.kit is not None and r.row_status != "identity_changed"]
        self._names = {r.device_id: r.name for r in adoptable}
        self.refused: dict[str, list[str]] = {}  # device ID -> the gates its last-known facts miss
        self.kits = DeployKitsTable(adoptable)
        self.kits_label = QLabel(
            "Kits (online ones are ticked):"
            if adoptable
            else "No adopted kits yet: adopt one first (Fleet ▸ Adopt…)."
        )
        self.activate_box = QCheckBox("&Activate after install (serve the new version at once)")
        self.activate_box.setChecked(True)
        self.gates = QLabel()
        self.gates.setWordWrap(True)
        self.gates.setTextFormat(Qt.TextFormat.PlainText)
        self.gates.setStyleSheet(_ERROR_STYLE)
        self.gates.hide()
        self.force_box = QCheckBox("&Force past the hardware gates (recorded in both audit logs)")
        self.force_box.hide()
        self.advice = QLabel()
        self.advice.setWordWrap(True)
        self.advice.setStyleSheet(_ADVICE_STYLE)
        self.advice.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.deploy_button = self.buttons.addButton("&Deploy", QDialogButtonBox.ButtonRole.ActionRole)
        self._lay_out()
        self._connect()
        self._update_buttons()

    def _lay_out(self) -> None:
        chooser = QHBoxLayout()
        chooser.addWidget(self.file_label, 1)
        chooser.addWidget(self.choose_button)
        form = QFormLayout()
        form.addRow("Model file:", chooser)
        form.addRow("Package:", self.package)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.form)
        layout.addWidget(self.kits_label)
        layout.addWidget(self.kits, 1)
        layout.addWidget(self.gates)
        layout.addWidget(self.activate_box)
        layout.addWidget(self.force_box)
        layout.addWidget(self.advice)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        bridge = self._bridge
        bridge.package_checked.connect(self._on_checked, QUEUED)
        bridge.gates_checked.connect(self._on_gates, QUEUED)
        bridge.deploy_progress.connect(self._on_progress, QUEUED)
        bridge.deployed.connect(self._on_deployed, QUEUED)
        bridge.failed.connect(self._on_failed, QUEUED)
        self.choose_button.clicked.connect(self.choose_model)
        self.form.recheck.connect(self.check_again)
        self.deploy_button.clicked.connect(self.deploy)
        self.buttons.rejected.connect(self.reject)
        self.kits.itemChanged.connect(self._update_buttons)
        self.kits.itemChanged.connect(self._show_gates)

    # choosing ----------------------------------------------------------------------------

    @Slot()
    def choose_model(self) -> None:
        chosen = self._prompts.choose_model(self, self._model.parent if self._model else None)
        if chosen is None:
            return
        self._model, self._package = chosen, None
        self.refused = {}
        self._show_gates()
        self.file_label.setText(str(chosen))
        self.form.hide()
        self._say(f"Checking {chosen.name} (its manifest, or what the file says)…")
        self._update_buttons()
        self._bridge.check_package(chosen)

    @Slot()
    def check_again(self) -> None:
        """Inspect the model again with the fields as they are now."""
        overrides = self._overrides()
        if self._model is None or overrides is None:
            return
        self._package = None
        self._say(f"Checking {self._model.name} with these fields…")
        self._update_buttons()
        self._bridge.check_package(self._model, overrides)

    @Slot(object, object)
    def _on_checked(self, model: Path, package: Package) -> None:
        if model != self._model:
            return  # an answer about a file chosen before this one
        self._package = package
        manifest = package.manifest
        if package.inspection is not None:
            self.form.show_inspection(package.inspection)
        self.form.setVisible(package.inspection is not None)
        inferred = "inferred from the file · " if package.inspection is not None else ""
        self._say(
            f"{inferred}{manifest.name} {manifest.version} · {manifest.task} · "
            f"{manifest.precision} · {size_text(manifest.size_bytes)} · "
            f"sha256 {manifest.sha256[:12]}…"
        )
        self._update_buttons()

    @Slot(object, object)
    def _on_gates(self, model: Path, refused: dict[str, list[str]]) -> None:
        if model == self._model:
            self.refused = {d: reasons for d, reasons in refused.items() if d in self._names}
            self._show_gates()

    @Slot()
    def _show_gates(self) -> None:
        """The ticked kits the manifest's `requires` refuse, each with its reasons."""
        ticked = [d for d in self.kits.checked() if d in self.refused]
        lines = [f"{self._names[d]} is refused: {'; '.join(self.refused[d])}" for d in ticked]
        self.gates.setText("\n".join(lines))
        self.gates.setVisible(bool(lines))
        self.force_box.setVisible(bool(self.refused))

    def _overrides(self) -> Overrides | None:
        """The form's fields, or None (said in the dialog) when one cannot be read."""
        try:
            return self.form.overrides()
        except ValueError as exc:
            self._say(str(exc), error=True)
            return None

    # deploying ---------------------------------------------------------------------------

    @Slot()
    def deploy(self) -> None:
        kits = self.kits.checked()
        if self._model is None or self._package is None or not kits or self._running:
            return
        overrides = None
        if self._package.inspection is not None:  # no manifest beside it: the fields decide
            overrides = self._overrides()
            if overrides is None:
                return
        self._set_running(True)
        self.kits.start(kits)
        self.advice.hide()
        name = overrides.name if overrides and overrides.name else self._package.manifest.name
        self.status.emit(f"Deploying {name} to {len(kits)} kits…")
        force = self.force_box.isVisible() and self.force_box.isChecked()
        self._bridge.deploy(self._model, kits, self.activate_box.isChecked(), overrides, force)

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        self.kits.apply(progress)

    @Slot(object)
    def _on_deployed(self, outcomes: list[DeployOutcome]) -> None:
        self._set_running(False)
        self.kits.finish(outcomes)
        advice = [o.advice for o in outcomes if o.advice]
        self.advice.setText("\n".join(advice))
        self.advice.setVisible(bool(advice))
        ok = sum(o.ok for o in outcomes)
        self.status.emit(f"Deployed to {ok} of {len(outcomes)} kits")

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "model check":
            self._package = None
            self._say(message, error=True)
        elif operation == "deploy":
            self._set_running(False)
            self._say(f"Deploy failed: {message}", error=True)
        self._update_buttons()

    def _set_running(self, running: bool) -> None:
        self._running = running
        self.kits.set_locked(running)
        self.form.set_locked(running)
        self._update_buttons()

    def _say(self, text: str, error: bool = False) -> None:
        self.package.setText(text)
        self.package.setStyleSheet(_ERROR_STYLE if error else "")

    def _update_buttons(self) -> None:
        ready = self._package is not None and bool(self.kits.checked())
        self.deploy_button.setEnabled(ready and not self._running)
        self.choose_button.setEnabled(not self._running)
        self.activate_box.setEnabled(not self._running)
        self.force_box.setEnabled(not self._running)
