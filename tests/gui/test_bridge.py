"""FleetBridge: known problems come back as messages, bugs with a traceback, threads end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytestqt.qtbot import QtBot

from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge


@pytest.fixture
def bridge(settings: AppSettings) -> Iterator[FleetBridge]:
    bridge = FleetBridge(settings, poll_interval=1.0)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.close()


def test_known_error_becomes_a_failed_signal(qtbot: QtBot, bridge: FleetBridge) -> None:
    with qtbot.waitSignal(bridge.failed, timeout=10_000) as failed:
        bridge.adopt("127.0.0.1:1", "AAAA2222")  # nothing listens on port 1
    operation, message = failed.args
    assert operation == "adopt"
    assert message.startswith("cannot reach 127.0.0.1:1 to adopt it")


def test_a_bug_is_logged_with_its_traceback(
    qtbot: QtBot, bridge: FleetBridge, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Fleet, ref: str, code: str, scope: str) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Fleet, "async_adopt", broken)
    with qtbot.waitSignal(bridge.failed, timeout=10_000) as failed:
        bridge.adopt("kit", "AAAA2222")
    assert failed.args[0] == "adopt"
    assert "internal error" in failed.args[1]
    [record] = [r for r in caplog.records if r.name == "app.gui.bridges.fleet_bridge"]
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_close_ends_the_loop_thread(qtbot: QtBot, settings: AppSettings) -> None:
    bridge = FleetBridge(settings)
    with qtbot.waitSignal(bridge.kits_loaded, timeout=10_000) as loaded:
        bridge.start()
    assert loaded.args == [[]]
    assert any(t.name == "kitfleet-bridge" for t in threading.enumerate())
    bridge.close()
    assert not any(t.name == "kitfleet-bridge" for t in threading.enumerate())
    bridge.adopt("kit", "AAAA2222")  # after close: ignored, not an error
    with qtbot.assertNotEmitted(bridge.failed, wait=100):
        pass


def test_model_work_reports_through_the_same_bridge(
    qtbot: QtBot, bridge: FleetBridge, tmp_path: Path
) -> None:
    unknown = "ef56" * 16
    with qtbot.waitSignal(bridge.models.models_unavailable, timeout=10_000) as unavailable:
        bridge.models.load_models(unknown)
    assert unavailable.args == [unknown, f"no kit with device ID {unknown} in the inventory"]
    with qtbot.waitSignal(bridge.failed, timeout=10_000) as failed:
        bridge.models.check_package(tmp_path / "missing.onnx")
    assert failed.args[0] == "model check"
    assert "does not exist" in failed.args[1]
