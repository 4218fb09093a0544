"""Real Qt, offscreen; real agents on loopback; mDNS only on 127.0.0.1; no thread left behind."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from PySide6.QtWidgets import QApplication

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui import gc
from app.gui.bridges.fleet_bridge import FleetBridge

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# The offscreen platform says these about any QMainWindow or raised dialog; not our warnings.
OFFSCREEN_NOISE = ("This plugin does not support propagateSizeHints", "This plugin does not support raise")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.qt_log_ignore(*OFFSCREEN_NOISE))


@pytest.fixture(autouse=True, scope="session")
def collect_garbage_on_the_gui_thread(qapp: QApplication) -> Iterator[None]:
    """As the app does: Qt objects must never be freed by a collection on a worker thread."""
    gc.install(qapp)
    yield
    gc.uninstall(qapp)


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    # Explicit interfaces always: tests never browse the machine's real network.
    return AppSettings.resolve(home=tmp_path / "home", mdns_interfaces=["127.0.0.1"])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[LocalAgent]:
    """A real agent process announcing on 127.0.0.1, stopped at teardown whatever happened."""
    started = LocalAgent(tmp_path / "a", "gui-kit", kit_model="Test kit")
    try:
        yield started.start()
    finally:
        started.stop()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[[str], LocalAgent]]:
    """Start more agents by name (no mDNS: the window knows adopted kits from its inventory)."""
    started: list[LocalAgent] = []

    def start(name: str) -> LocalAgent:
        started.append(LocalAgent(tmp_path / name, name, kit_model="Test kit", mdns=False))
        return started[-1].start()

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


@pytest.fixture
def bridge(settings: AppSettings) -> Iterator[FleetBridge]:
    """A bridge with quick polls, closed at teardown; the test starts it after connecting."""
    made = FleetBridge(settings, poll_interval=1.0)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(autouse=True)
def verify_threads_ended() -> Iterator[None]:
    """Every test leaves the threads it found, and no more (bridges must join theirs)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra, f"threads left running: {sorted(t.name for t in extra)}"
