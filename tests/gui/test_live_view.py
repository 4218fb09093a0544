"""The Live view against a real agent running the bundled detector on a generated video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.charts.counts_chart import CountsHistory
from app.gui.tabs.live_view import LiveView
from resources import models_dir
from tests.gui.kits import adopt, deploy
from tests.gui.windows import WAIT_MS
from tests.videos import write_video

LABELS = {"circle", "square", "triangle"}


def test_counts_history_turns_totals_into_rates_per_label() -> None:
    history = CountsHistory()
    assert not history.add({"updated_at": 10.0, "totals": {"square": 4}})
    assert history.add({"updated_at": 12.0, "totals": {"square": 10, "circle": 2}})
    assert not history.add({"updated_at": 12.0, "totals": {"square": 10, "circle": 2}})  # the same again
    assert not history.add({"updated_at": 13.0, "totals": {"square": 1}})  # a new attempt starts at 0
    assert history.add({"updated_at": 14.0, "totals": {"square": 3, "circle": 1}})
    assert list(history.points) == [
        (2.0, {"square": 3.0, "circle": 1.0}),
        (4.0, {"square": 2.0, "circle": 1.0}),
    ]
    assert history.labels == ["square", "circle"]
    assert history.peak() == 3.0


def test_the_live_view_shows_frames_counts_and_figures_of_a_real_stream(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    agent = start_agent("live-kit")
    [device] = adopt(settings, agent)
    deploy(settings, models_dir() / "shapes-yolo-fp32.onnx")
    write_video(agent.data_dir / "datasets" / "clip.mp4", seconds=4, fps=15)
    failures: list[tuple[str, str]] = []
    bridge.failed.connect(lambda operation, message: failures.append((operation, message)))
    streams = bridge.streams
    view = LiveView(streams, device)
    qtbot.addWidget(view)
    view.resize(900, 620)
    view.show()
    bridge.start()

    view.model_combo.setEditText("shapes-yolo")  # typed: a stand-alone view knows no models
    view.source_edit.setText("clip.mp4")
    with qtbot.waitSignal(streams.started, timeout=WAIT_MS):
        _button(view, "Start stream").click()
    qtbot.waitUntil(
        lambda: not view.frame_view.frame.isNull() and len(view.chart.history.points) >= 2, timeout=WAIT_MS
    )
    view.grab().save(str(screenshots / "live-view.png"))
    assert view.frame_view.frame.width() >= 192  # the kit's annotated frame, not a placeholder
    assert view.figures["processed_fps"].text().endswith("frames)")
    assert view.figures["latency"].text().startswith("p50 ")
    assert set(view.chart.history.labels) <= LABELS
    assert view.chart.history.labels
    qtbot.waitUntil(lambda: view.figures["state"].text() == "done", timeout=WAIT_MS)
    assert view.frames_seen > 0
    assert view.figures["dropped"].text() == "0"
    assert not failures

    (agent.data_dir / "datasets" / "drop").mkdir()
    view.source_edit.setText("drop")  # a watched folder: runs until stopped
    view.fps_spin.setValue(5)
    with qtbot.waitSignal(streams.started, timeout=WAIT_MS) as started:
        _button(view, "Start stream").click()
    looping = started.args[1].job_id
    with qtbot.waitSignal(streams.streams_loaded, timeout=WAIT_MS):
        view.refresh()
    assert looping in [view.jobs.itemData(i) for i in range(view.jobs.count())]
    with qtbot.waitSignal(streams.stopped, timeout=WAIT_MS) as stopped:
        view.stop()
    assert stopped.args[1].state == "cancelled"
    assert not failures


def _button(view: LiveView, text: str) -> QPushButton:
    [button] = [b for b in view.findChildren(QPushButton) if b.text() == text]
    return button
