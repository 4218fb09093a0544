"""run_demo_window, as `kitfleet demo` calls it: offscreen, screenshot, then return."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.main import run_demo_window
from tests.gui.kits import adopt


def test_demo_window_waits_for_online_kits_and_saves_a_screenshot(
    qtbot: QtBot,
    settings: AppSettings,
    agent: LocalAgent,
    screenshots: Path,
) -> None:
    adopt(settings, agent)
    picture = screenshots / "gui-demo.png"
    picture.unlink(missing_ok=True)
    assert run_demo_window(settings, adopted=1, screenshot=picture, offscreen=True, timeout=20) == 0
    assert picture.stat().st_size > 10_000


def test_demo_window_gives_up_after_the_timeout(
    qtbot: QtBot,
    settings: AppSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_demo_window(settings, adopted=1, screenshot=None, offscreen=True, timeout=0.5) == 1
    assert "did not show 1 kits online with facts within 0.5 s" in capsys.readouterr().err
