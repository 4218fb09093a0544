"""Provision a kit over SSH from the window: address, login, host-key confirmation, live steps.

The SSH work runs on a plain Python thread with its own `Fleet` (sqlite stays on the thread that
opened it); it reports only through queued signals, so no widget is touched off the GUI thread.
The host key is looked at first (key exchange only, nothing sent); an unknown key is shown to the
technician with its fingerprint, and only exactly that key is then trusted. A changed key is
refused without asking.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
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

from app.fleet.errors import Error
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.provision import (
    STEPS,
    HostKeyCheck,
    KitOptions,
    KnownHosts,
    Login,
    ProvisionRequest,
    ProvisionResult,
    SshTarget,
    Step,
    async_provision,
    probe_host_key,
)

__all__ = ["ConfirmHostKey", "ProvisionDialog", "confirm_host_key"]

# (parent, what the kit presented) -> trust this key?
ConfirmHostKey = Callable[[QWidget | None, HostKeyCheck], bool]
_MARKS = {"pending": "○", "running": "…", "done": "✓", "failed": "✗"}


def confirm_host_key(parent: QWidget | None, check: HostKeyCheck) -> bool:
    """The real question: trust a key seen for the first time, after comparing its fingerprint."""
    box = QMessageBox(QMessageBox.Icon.Question, "Unknown SSH host",
                      f"{check.host} is not a known SSH host.", parent=parent)
    box.setInformativeText(
        f"Its {check.key_type} key fingerprint is:\n\n{check.fingerprint}\n\nCompare it with "
        "the one the kit shows (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its "
        "console). Nothing has been sent to it yet.")
    trust = box.addButton("Trust and continue", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is trust


class _Reporter(QObject):
    """Carries results from the worker thread to the GUI thread (queued connections)."""

    probed = Signal(object)  # HostKeyCheck
    step = Signal(object)  # Step
    done = Signal(object)  # ProvisionResult
    failed = Signal(str)


class ProvisionDialog(QDialog):
    """Non-modal; emits `provisioned(Kit)` when a kit was installed and adopted."""

    provisioned = Signal(object)  # app.fleet.inventory.Kit

    def __init__(self, settings: AppSettings, parent: QWidget | None = None,
                 confirm: ConfirmHostKey = confirm_host_key,
                 options: KitOptions | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Provision a kit over SSH")
        self._settings, self._confirm = settings, confirm
        self._options = options or KitOptions()
        self._thread: threading.Thread | None = None
        self._reporter = _Reporter(self)
        self._reporter.probed.connect(self._on_probed)
        self._reporter.step.connect(self._on_step)
        self._reporter.done.connect(self._on_done)
        self._reporter.failed.connect(self._on_failed)
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
        self.provision_button = self.buttons.addButton("Provision",
                                                       QDialogButtonBox.ButtonRole.ActionRole)
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
        name = QFileDialog.getOpenFileName(self, "Choose the SSH private key",
                                           str(Path.home() / ".ssh"))[0]
        if name:
            self.key_edit.setText(name)

    def _browse_wheelhouse(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Choose the wheelhouse folder",
                                                self.wheelhouse_edit.text())
        if name:
            self.wheelhouse_edit.setText(name)

    # state ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _validate(self) -> None:
        ready = all(e.text().strip() for e in (self.host_edit, self.user_edit, self.wheelhouse_edit))
        self.provision_button.setEnabled(ready and not self.busy)

    def _inputs(self, enabled: bool) -> None:
        for widget in (self.host_edit, self.port_spin, self.user_edit, self.key_edit,
                       self.password_edit, self.wheelhouse_edit, self.name_edit):
            widget.setEnabled(enabled)
        self.provision_button.setEnabled(enabled)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(enabled)

    def target(self) -> SshTarget:
        return SshTarget(self.user_edit.text().strip(), self.host_edit.text().strip().strip("[]"),
                         self.port_spin.value())

    def _run(self, name: str, work: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                work()
            except Error as exc:
                self._reporter.failed.emit(str(exc))
            except Exception as exc:  # a bug: still tell the technician, never hang the dialog
                self._reporter.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=guarded, name=name)
        self._thread.start()

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
        target, store = self.target(), KnownHosts(self._settings.home)
        self._run("provision-probe", lambda: self._reporter.probed.emit(probe_host_key(target, store)))

    @Slot(object)
    def _on_probed(self, check: HostKeyCheck) -> None:
        self._join()
        if check.trust == "changed":
            self._on_failed(
                f"{check.host} presents SSH host key {check.fingerprint} but "
                f"{check.known_fingerprint} was trusted before; refusing to connect (it may be "
                f"an impostor). If the kit was reinstalled on purpose, remove its line from "
                f"{KnownHosts(self._settings.home).path} and try again.")
            return
        confirmed = None
        if check.trust == "unknown":
            if not self._confirm(self, check):
                self._on_failed(f"The host key {check.fingerprint} was not trusted; nothing was "
                                "sent to the kit.")
                return
            confirmed = check.fingerprint
        self._provision(confirmed)

    def _provision(self, confirmed: str | None) -> None:
        key = self.key_edit.text().strip()
        login = Login(key_file=Path(key).expanduser() if key else None,
                      password=self.password_edit.text() or None,
                      confirmed_fingerprint=confirmed)
        options = self._options
        if self.name_edit.text().strip():
            options = replace(options, name=self.name_edit.text().strip())
        request = ProvisionRequest(self.target(), login,
                                   Path(self.wheelhouse_edit.text().strip()).expanduser(), options)
        self.status.setText(f"Provisioning {request.target}…")
        settings, reporter = self._settings, self._reporter

        def work() -> None:
            async def provision() -> ProvisionResult:
                fleet = Fleet(settings)
                try:
                    return await async_provision(fleet, request, reporter.step.emit)
                finally:
                    fleet.close()

            reporter.done.emit(asyncio.run(provision()))

        self._run("provision", work)

    @Slot(object)
    def _on_step(self, step: Step) -> None:
        for row in range(self.steps.count()):
            name = self.steps.item(row).data(Qt.ItemDataRole.UserRole)
            if row < step.index - 1:
                self._mark(name, "done")
        self._mark(step.name, "running")
        self.detail.setText(step.detail)

    @Slot(object)
    def _on_done(self, result: ProvisionResult) -> None:
        self._join()
        for name in STEPS:
            self._mark(name, "done")
        kit = result.kit
        what = (f"Upgraded {result.previous_version} → {result.version}" if
                result.previous_version else f"Installed kitfleet-agent {result.version}")
        self.status.setText(f"{what} on {kit.name} ({kit.address}), {result.layout.service} "
                            "service; adopted.")
        self.detail.setText("")
        self._inputs(True)
        self.provisioned.emit(kit)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._join()
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

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def reject(self) -> None:
        if self.busy:
            return  # half a provisioning is worse than waiting for it; Close is disabled anyway
        super().reject()

    def done(self, code: int) -> None:
        self._join()
        super().done(code)
