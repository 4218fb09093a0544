"""Provision a kit over SSH from the window: address, login, host-key confirmation, live steps.

The work goes through the bridge like every other operation (`ProvisionBridge`, on its loop,
into the window's inventory); its answers come back as queued signals for this dialog's run.
The host key is looked at first (key exchange only, nothing sent); an unknown key is shown to the
technician with its fingerprint, and only exactly that key is then trusted. A changed key is
refused without asking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.bridges.provision_bridge import ProvisionBridge
from app.provision import (
    STEPS,
    HostKeyCheck,
    KitOptions,
    Login,
    ProvisionRequest,
    ProvisionResult,
    SshTarget,
    Step,
)

__all__ = ["ConfirmHostKey", "ProvisionDialog", "confirm_host_key"]

# (parent, what the kit presented) -> trust this key?
ConfirmHostKey = Callable[[QWidget | None, HostKeyCheck], bool]
QUEUED = Qt.ConnectionType.QueuedConnection
_MARKS = {"pending": "○", "running": "…", "done": "✓", "failed": "✗"}


def confirm_host_key(parent: QWidget | None, check: HostKeyCheck) -> bool:
    """The real question: trust a key seen for the first time, after comparing its fingerprint."""
    box = QMessageBox(
        QMessageBox.Icon.Question, "Unknown SSH host", f"{check.host} is not a known SSH host.", parent=parent
    )
    box.setInformativeText(
        f"Its {check.key_type} key fingerprint is:\n\n{check.fingerprint}\n\nCompare it with "
        "the one the kit shows (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its "
        "console). Nothing has been sent to it yet."
    )
    trust = box.addButton("Trust and continue", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is trust


class ProvisionDialog(QDialog):
    """Non-modal; emits `provisioned(Kit)` when a kit was installed and adopted."""

    provisioned = Signal(object)  # app.fleet.inventory.Kit

    def __init__(
        self,
        bridge: ProvisionBridge,
        parent: QWidget | None = None,
        confirm: ConfirmHostKey = confirm_host_key,
        options: KitOptions | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Provision a kit over SSH")
        self._bridge, self._confirm = bridge, confirm
        self._settings = bridge.settings
        self._options = options or KitOptions()
        self._run: int | None = None  # the bridge's number for the run under way
        bridge.probed.connect(self._on_probed, QUEUED)
        bridge.step.connect(self._on_step, QUEUED)
        bridge.provisioned.connect(self._on_done, QUEUED)
        bridge.run_failed.connect(self._on_run_failed, QUEUED)
        self._build()
        self._validate()

    # layout -------------------------------------------------------------------------

    def _build(self) -> None:
        self.host_edit = QLineEdit(placeholderText="kit-01.local or 10.0.0.7")
        self.port_spin = QSpinBox(minimum=1, maximum=65535, value=22)
        self.user_edit = QLineEdit("root")
        self.key_edit = QLineEdit(placeholderText="empty: SSH agent and ~/.ssh keys")
        self.password_edit = QLineEdit(placeholderText="optional", echoMode=QLineEdit.EchoMode.Password)
        self.wheelhouse_edit = QLineEdit(str(self._settings.home / "wheelhouse"))
        self.name_edit = QLineEdit(placeholderText="default: the kit's host name")
        host_row = QHBoxLayout()
        host_row.addWidget(self.host_edit, 1)
        host_row.addWidget(QLabel("Port:"))
        host_row.addWidget(self.port_spin)
        form = QFormLayout()
        form.addRow("Host:", host_row)
        form.addRow("User:", self.user_edit)
        form.addRow("Key file:", self._with_browse(self.key_edit, self._browse_key))
        form.addRow("Password:", self.password_edit)
        form.addRow("Wheelhouse:", self._with_browse(self.wheelhouse_edit, self._browse_wheelhouse))
        form.addRow("Kit name:", self.name_edit)
        self.steps = QListWidget()
        for index, (name, title) in enumerate(STEPS.items(), start=1):
            item = QListWidgetItem(f"{_MARKS['pending']}  {index}. {title}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.steps.addItem(item)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.status = QLabel("Fill in the kit's SSH address, then Provision.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.provision_button = self.buttons.addButton("Provision", QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.steps)
        layout.addWidget(self.detail)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.buttons.rejected.connect(self.reject)
        self.provision_button.clicked.connect(self.start)
        for edit in (self.host_edit, self.user_edit, self.wheelhouse_edit):
            edit.textChanged.connect(self._validate)
        self.resize(560, 560)

    def _with_browse(self, edit: QLineEdit, browse: Callable[[], None]) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        row.addWidget(button)
        return row

    def _browse_key(self) -> None:
        name = QFileDialog.getOpenFileName(self, "Choose the SSH private key", str(Path.home() / ".ssh"))[0]
        if name:
            self.key_edit.setText(name)

    def _browse_wheelhouse(self) -> None:
        name = QFileDialog.getExistingDirectory(
            self, "Choose the wheelhouse folder", self.wheelhouse_edit.text()
        )
        if name:
            self.wheelhouse_edit.setText(name)

    # state ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._run is not None

    def _validate(self) -> None:
        ready = all(e.text().strip() for e in (self.host_edit, self.user_edit, self.wheelhouse_edit))
        self.provision_button.setEnabled(ready and not self.busy)

    def _inputs(self, enabled: bool) -> None:
        for widget in (
            self.host_edit,
            self.port_spin,
            self.user_edit,
            self.key_edit,
            self.password_edit,
            self.wheelhouse_edit,
            self.name_edit,
        ):
            widget.setEnabled(enabled)
        self.provision_button.setEnabled(enabled)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(enabled)

    def target(self) -> SshTarget:
        return SshTarget(
            self.user_edit.text().strip(), self.host_edit.text().strip().strip("[]"), self.port_spin.value()
        )

    # flow -------------------------------------------------------------------------------

    @Slot()
    def start(self) -> None:
        """Look at the host key first; nothing is sent until it is trusted."""
        if self.busy:
            return
        self._inputs(False)
        self._reset_steps()
        self._mark("connect", "running")
        self.status.setText(f"Checking the SSH host key of {self.target()}…")
        self._run = self._bridge.probe(self.target())

    @Slot(int, object)
    def _on_probed(self, run: int, check: HostKeyCheck) -> None:
        if run != self._run:
            return  # another dialog's run
        if check.trust == "changed":
            self._failed(
                f"{check.host} presents SSH host key {check.fingerprint} but "
                f"{check.known_fingerprint} was trusted before; refusing to connect (it may be "
                f"an impostor). If the kit was reinstalled on purpose, remove its line from "
                f"{self._bridge.known_hosts.path} and try again."
            )
            return
        confirmed = None
        if check.trust == "unknown":
            if not self._confirm(self, check):
                self._failed(
                    f"The host key {check.fingerprint} was not trusted; nothing was sent to the kit."
                )
                return
            confirmed = check.fingerprint
        self._provision(run, confirmed)

    def _provision(self, run: int, confirmed: str | None) -> None:
        key = self.key_edit.text().strip()
        login = Login(
            key_file=Path(key).expanduser() if key else None,
            password=self.password_edit.text() or None,
            confirmed_fingerprint=confirmed,
        )
        options = self._options
        if self.name_edit.text().strip():
            options = replace(options, name=self.name_edit.text().strip())
        request = ProvisionRequest(
            self.target(), login, Path(self.wheelhouse_edit.text().strip()).expanduser(), options
        )
        self.status.setText(f"Provisioning {request.target}…")
        self._bridge.provision(run, request)

    @Slot(int, object)
    def _on_step(self, run: int, step: Step) -> None:
        if run != self._run:
            return
        for row in range(self.steps.count()):
            name = self.steps.item(row).data(Qt.ItemDataRole.UserRole)
            if row < step.index - 1:
                self._mark(name, "done")
        self._mark(step.name, "running")
        self.detail.setText(step.detail)

    @Slot(int, object)
    def _on_done(self, run: int, result: ProvisionResult) -> None:
        if run != self._run:
            return
        self._run = None
        for name in STEPS:
            self._mark(name, "done")
        kit = result.kit
        what = (
            f"Upgraded {result.previous_version} → {result.version}"
            if result.previous_version
            else f"Installed kitfleet-agent {result.version}"
        )
        self.status.setText(
            f"{what} on {kit.name} ({kit.address}), {result.layout.service} service; adopted."
        )
        self.detail.setText("")
        self._inputs(True)
        self.provisioned.emit(kit)

    @Slot(int, str)
    def _on_run_failed(self, run: int, message: str) -> None:
        if run == self._run:
            self._failed(message)

    def _failed(self, message: str) -> None:
        self._run = None
        for row in range(self.steps.count()):
            if self.steps.item(row).text().startswith(_MARKS["running"]):
                self._mark(self.steps.item(row).data(Qt.ItemDataRole.UserRole), "failed")
        self.status.setText(message)
        self.status.setStyleSheet("color: #b3261e;")
        self._inputs(True)
        self._validate()

    def _reset_steps(self) -> None:
        self.status.setStyleSheet("")
        self.detail.setText("")
        for name in STEPS:
            self._mark(name, "pending")

    def _mark(self, name: str, state: str) -> None:
        row = list(STEPS).index(name)
        item = self.steps.item(row)
        item.setText(f"{_MARKS[state]}  {row + 1}. {STEPS[name]}")

    def reject(self) -> None:
        if self.busy:
            return  # half a provisioning is worse than waiting for it; Close is disabled anyway
        super().reject()
