"""The Provision dialog against a real sshd on loopback: host-key questions, then a real install.

The kit is this machine over SSH, installed under the test's temporary folder with the
user-level supervisor, listening on 127.0.0.1 without mDNS; its pip sees no reachable index.
The work goes through the window's bridge, as in the app, so the kit lands in its inventory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from PySide6.QtWidgets import QDialogButtonBox, QWidget
from pytestqt.qtbot import QtBot

from app.fleet.inventory import Inventory
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.provision_dialog import ProvisionDialog
from app.provision import HostKeyCheck, KitOptions, KnownHosts, Login, SshTarget
from app.provision.session import SshSession
from tests.sshd import Sshd, free_port
from tests.wheelhouse import wheelhouse

__all__ = ["wheelhouse"]  # the session fixture, imported so pytest finds it

INSTALL_MS = 300_000


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not Sshd.available():
        pytest.skip("needs OpenSSH sshd")
    server = Sshd(tmp_path / "sshd").start()
    try:
        yield server
    finally:
        server.stop()


def kit_options(tmp_path: Path) -> KitOptions:
    (tmp_path / "kit-home").mkdir(exist_ok=True)
    return KitOptions(
        kit_root=str(tmp_path / "kit"),
        service="user",
        agent_port=free_port(),
        agent_settings={"host": "127.0.0.1", "mdns": False},
        remote_env={"HOME": str(tmp_path / "kit-home"), "PIP_INDEX_URL": "http://127.0.0.1:9/"},
    )


def open_dialog(
    qtbot: QtBot,
    bridge: FleetBridge,
    sshd: Sshd,
    tmp_path: Path,
    answers: list[bool],
    asked: list[HostKeyCheck],
    house: Path | None = None,
) -> ProvisionDialog:
    def confirm(parent: QWidget | None, check: HostKeyCheck) -> bool:
        asked.append(check)
        return answers.pop(0)

    bridge.start()
    dialog = ProvisionDialog(bridge.provisioning, confirm=confirm, options=kit_options(tmp_path))
    qtbot.addWidget(dialog)
    dialog.host_edit.setText("127.0.0.1")
    dialog.port_spin.setValue(sshd.port)
    dialog.user_edit.setText(sshd.user)
    dialog.key_edit.setText(str(sshd.client_key))
    dialog.wheelhouse_edit.setText(str(house or tmp_path / "no-wheelhouse"))
    dialog.name_edit.setText("dialog-kit")
    dialog.show()
    return dialog


def wait_idle(qtbot: QtBot, dialog: ProvisionDialog, timeout: int) -> None:
    qtbot.waitUntil(lambda: dialog.provision_button.isEnabled() and not dialog.busy, timeout=timeout)


def test_provision_is_enabled_only_with_host_user_and_wheelhouse(qtbot: QtBot, bridge: FleetBridge) -> None:
    dialog = ProvisionDialog(bridge.provisioning)
    qtbot.addWidget(dialog)
    assert not dialog.provision_button.isEnabled()
    dialog.host_edit.setText("kit-01.local")
    assert dialog.provision_button.isEnabled()  # user "root" and <home>/wheelhouse preset
    dialog.user_edit.setText("")
    assert not dialog.provision_button.isEnabled()
    dialog.user_edit.setText("kit")
    dialog.port_spin.setValue(2222)
    assert dialog.target() == SshTarget("kit", "kit-01.local", 2222)


def test_a_failed_run_is_told_in_its_own_dialog_only(qtbot: QtBot, bridge: FleetBridge) -> None:
    """Nothing listens at the port: the bridge sorts the refusal to the dialog that asked."""
    failures: list[tuple[str, str]] = []
    bridge.failed.connect(lambda operation, message: failures.append((operation, message)))
    bridge.start()
    dialogs = [ProvisionDialog(bridge.provisioning), ProvisionDialog(bridge.provisioning)]
    for dialog in dialogs:
        qtbot.addWidget(dialog)
        dialog.host_edit.setText("127.0.0.1")
    asking, other = dialogs
    asking.port_spin.setValue(free_port())
    asking.provision_button.click()
    assert asking.busy
    assert not asking.buttons.button(QDialogButtonBox.StandardButton.Close).isEnabled()
    wait_idle(qtbot, asking, 20_000)
    assert asking.status.text().startswith(f"cannot reach 127.0.0.1:{asking.port_spin.value()}")
    assert asking.steps.item(0).text().startswith("✗")
    assert other.status.text() == "Fill in the kit's SSH address, then Provision."
    assert not other.steps.item(0).text().startswith("✗")
    assert failures == []  # told where the technician looks, not again in the main window


def test_declining_an_unknown_host_key_sends_nothing(
    qtbot: QtBot, bridge: FleetBridge, settings: AppSettings, sshd: Sshd, tmp_path: Path
) -> None:
    asked: list[HostKeyCheck] = []
    dialog = open_dialog(qtbot, bridge, sshd, tmp_path, [False], asked)
    dialog.provision_button.click()
    wait_idle(qtbot, dialog, 20_000)
    assert [a.fingerprint for a in asked] == [sshd.host_key_fingerprint()]
    assert asked[0].trust == "unknown"
    assert "was not trusted; nothing was sent" in dialog.status.text()
    assert not (tmp_path / "kit").exists()
    assert KnownHosts(settings.home).known_key("127.0.0.1", sshd.port, "ssh-ed25519") is None


def test_changed_host_key_is_refused_without_asking(
    qtbot: QtBot, bridge: FleetBridge, settings: AppSettings, sshd: Sshd, tmp_path: Path
) -> None:
    SshSession.connect(
        SshTarget(sshd.user, "127.0.0.1", sshd.port),
        Login(key_file=sshd.client_key, accept_new_host_key=True),
        KnownHosts(settings.home),
    ).close()
    sshd.change_host_key()
    asked: list[HostKeyCheck] = []
    dialog = open_dialog(qtbot, bridge, sshd, tmp_path, [True], asked)
    dialog.provision_button.click()
    wait_idle(qtbot, dialog, 20_000)
    assert asked == []
    assert "refusing to connect" in dialog.status.text()
    assert sshd.host_key_fingerprint() in dialog.status.text()
    assert dialog.steps.item(0).text().startswith("✗")


def test_provision_through_the_dialog(
    qtbot: QtBot,
    bridge: FleetBridge,
    settings: AppSettings,
    sshd: Sshd,
    tmp_path: Path,
    wheelhouse: Path,
    screenshots: Path,
) -> None:
    asked: list[HostKeyCheck] = []
    failures: list[tuple[str, str]] = []
    bridge.failed.connect(lambda operation, message: failures.append((operation, message)))
    dialog = open_dialog(qtbot, bridge, sshd, tmp_path, [True], asked, wheelhouse)
    kit_root = tmp_path / "kit"
    try:
        with qtbot.waitSignal(dialog.provisioned, timeout=INSTALL_MS) as adopted:
            dialog.provision_button.click()
        wait_idle(qtbot, dialog, 20_000)
        kit = adopted.args[0]
        assert [a.fingerprint for a in asked] == [sshd.host_key_fingerprint()]
        assert all(dialog.steps.item(r).text().startswith("✓") for r in range(dialog.steps.count()))
        assert "Installed kitfleet-agent" in dialog.status.text()
        assert [f for f in failures if f[0] == "provision"] == []  # the dialog's own, not the window's
        dialog.grab().save(str(screenshots / "provision-dialog.png"))
        bridge.close()  # its inventory closed: what it adopted is on disk
        inventory = Inventory(settings.home)
        try:
            assert inventory.resolve("dialog-kit").device_id == kit.device_id
        finally:
            inventory.close()
    finally:
        if (kit_root / "supervise.py").exists():
            subprocess.run(
                [
                    sys.executable,
                    str(kit_root / "supervise.py"),
                    "stop",
                    "--pid-file",
                    str(kit_root / "run" / "supervisor.pid"),
                ],
                check=False,
                timeout=60,
            )
    state = json.loads((kit_root / "run" / "supervisor.pid.state").read_text())
    assert state["stopped"] is True
