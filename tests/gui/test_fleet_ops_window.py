"""Fleet operations in the window, offscreen, against real agents: figures, history, offline,
alerts, tags, filter, audit and the report export. Screenshots go to artifacts/screenshots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from agent.wire import MetricSample
from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.charts.history_chart import LOAD_SERIES, HistoryChart
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from app.gui.ops_window import OpsPrompts
from app.gui.tables.fleet_model import FleetTableModel
from app.gui.tables.kit_row import COLUMNS
from resources import models_dir
from tests.gui.kits import adopt, deploy
from tests.gui.windows import WAIT_MS, open_window

INT8 = models_dir() / "digits-cnn-int8.onnx"
CPU_BLUE = QColor(LOAD_SERIES[0][1])


def quick(start_agent: Callable[[str], LocalAgent], tmp_path: Path, name: str) -> LocalAgent:
    """A real agent sampling metrics every 0.2 s, so a chart has a history within the test."""
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "agent.json").write_text(json.dumps({"metrics_interval_s": 0.2}))
    return start_agent(name)


def cell(window: MainWindow, device_id: str, column: str) -> str:
    row = window.model.row(device_id)
    assert row is not None
    position = window.model.rows().index(row)
    return str(window.model.index(position, COLUMNS.index(column)).data() or "")


def coloured_pixels(image: QImage, colour: QColor, tolerance: int = 40) -> int:
    found = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            pixel = image.pixelColor(x, y)
            if (
                abs(pixel.red() - colour.red())
                + abs(pixel.green() - colour.green())
                + abs(pixel.blue() - colour.blue())
            ) < tolerance:
                found += 1
    return found


def test_columns_fill_from_real_agents_and_history_is_charted(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    tmp_path: Path,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    agents = [quick(start_agent, tmp_path, n) for n in ("field-1", "field-2")]
    ids = adopt(settings, *agents)
    deploy(settings, INT8)
    window = open_window(qtbot, bridge, Prompts())

    def filled() -> None:
        for device_id in ids:
            assert cell(window, device_id, "Serving") == "digits-cnn 1.0-int8"
            assert cell(window, device_id, "CPU %").endswith("%")
            assert cell(window, device_id, "Mem %").endswith("%")
            assert cell(window, device_id, "Disk free").endswith("GiB")
            assert cell(window, device_id, "Jobs") == "idle"

    qtbot.waitUntil(filled, timeout=WAIT_MS)
    window.select_device(ids[0])
    window.tabs.setCurrentWidget(window.fleet_ops.history)
    chart = window.fleet_ops.history.chart
    qtbot.waitUntil(lambda: len(chart.samples()) >= 5, timeout=WAIT_MS)
    assert all(s.seq is not None for s in chart.samples())
    assert coloured_pixels(chart.grab().toImage(), CPU_BLUE) > 20  # the CPU line is drawn
    window.grab().save(str(screenshots / "fleet-ops-history.png"))


def test_a_stopped_agent_turns_offline_with_last_known_figures_and_an_alert(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    tmp_path: Path,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    (settings.home / "settings.json").write_text(json.dumps({"alerts": {"offline_warn_min": 0}}))
    staying, leaving = (quick(start_agent, tmp_path, n) for n in ("stays", "leaves"))
    ids = adopt(settings, staying, leaving)
    deploy(settings, INT8)
    window = open_window(qtbot, bridge, Prompts())
    qtbot.waitUntil(lambda: cell(window, ids[1], "Serving") == "digits-cnn 1.0-int8", timeout=WAIT_MS)
    # The deploy's own record shows the model at once; figures come with the first poll.
    qtbot.waitUntil(lambda: cell(window, ids[1], "CPU %").endswith("%"), timeout=WAIT_MS)
    leaving.stop()

    def offline_with_last_known() -> None:
        row = window.model.row(ids[1])
        assert row is not None
        assert row.row_status == "offline"
        assert row.stale
        assert cell(window, ids[1], "Status").startswith("offline (last seen")
        assert cell(window, ids[1], "Serving") == "digits-cnn 1.0-int8"  # still shown, last known
        assert cell(window, ids[1], "CPU %").endswith("%")
        assert cell(window, ids[1], "Alerts").startswith("offline")

    qtbot.waitUntil(offline_with_last_known, timeout=WAIT_MS)
    position = window.model.rows().index(window.model.row(ids[1]))  # type: ignore[arg-type]
    cpu = window.model.index(position, COLUMNS.index("CPU %"))
    assert "last known" in str(cpu.data(Qt.ItemDataRole.ToolTipRole))
    panel = window.fleet_ops.alerts
    qtbot.waitUntil(
        lambda: any(a.kind == "offline" and a.device_id == ids[1] for a in panel.alerts()), timeout=WAIT_MS
    )
    assert cell(window, ids[0], "Status") == "online"
    window.select_device(ids[1])
    window.tabs.setCurrentWidget(window.fleet_ops.history)
    chart = window.fleet_ops.history.chart
    qtbot.waitUntil(lambda: len(chart.samples()) >= 3, timeout=WAIT_MS)  # history from the laptop
    window.grab().save(str(screenshots / "fleet-ops-offline.png"))


def test_tags_filter_audit_and_report_export(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    tmp_path: Path,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    ids = adopt(settings, *(quick(start_agent, tmp_path, n) for n in ("north-a", "south-b")))
    deploy(settings, INT8)
    window = open_window(qtbot, bridge, Prompts())
    out = tmp_path / "day.html"
    window.fleet_ops.prompts = OpsPrompts(
        choose_report=lambda parent, suggested: out, edit_tags=lambda parent, kit, current: ["north", "box 1"]
    )
    qtbot.waitUntil(lambda: cell(window, ids[0], "Serving") != "", timeout=WAIT_MS)
    window.select_device(ids[0])
    window.fleet_ops.tags_action.trigger()
    qtbot.waitUntil(lambda: cell(window, ids[0], "Tags") == "box 1, north", timeout=WAIT_MS)

    window.fleet_ops.filter.setText("NORTH")
    assert window.proxy.rowCount() == 1
    assert window.proxy.index(0, 0).data(FleetTableModel.DeviceIdRole) == ids[0]
    window.fleet_ops.filter.clear()
    assert window.proxy.rowCount() == 2

    window.fleet_ops.audit_action.trigger()
    audit = window.fleet_ops.audit
    qtbot.waitUntil(lambda: audit.state.text().startswith("chain: verified"), timeout=WAIT_MS)
    actions = {item.text() for r in range(audit.table.rowCount()) if (item := audit.table.item(r, 3))}
    assert {"kit.adopt", "model.upload", "model.deploy"} <= actions
    window.grab().save(str(screenshots / "fleet-ops-audit.png"))

    window.fleet_ops.export_action.trigger()
    assert window.fleet_ops.progress.isVisible()
    qtbot.waitUntil(lambda: out.exists() and window.fleet_ops.export_action.isEnabled(), timeout=60_000)
    html = out.read_text()
    assert "north-a" in html
    assert "south-b" in html
    assert "box 1" in html
    assert "digits-cnn" in html
    assert not window.fleet_ops.progress.isVisible()


def test_window_state_and_palette_are_remembered(qtbot: QtBot, settings: AppSettings) -> None:
    first_bridge = FleetBridge(settings, poll_interval=1.0)
    first = MainWindow(first_bridge)
    qtbot.addWidget(first)
    first.fleet_ops.dark_action.trigger()
    first.fleet_ops.audit_dock.hide()
    first.resize(640, 480)  # within the offscreen screen, which geometry is clamped to
    first.close()
    second = MainWindow(FleetBridge(settings, poll_interval=1.0))
    qtbot.addWidget(second)
    try:
        assert second.fleet_ops.dark_action.isChecked()
        assert second.size().width() == 640
        assert not second.fleet_ops.audit_dock.isVisibleTo(second)
    finally:
        second.fleet_ops.dark_action.trigger()  # back to light for the other tests
        second.close()


def test_the_history_chart_draws_each_series_and_says_when_there_is_none(qtbot: QtBot) -> None:
    chart = HistoryChart()
    qtbot.addWidget(chart)
    chart.resize(600, 300)
    empty = chart.grab().toImage()
    assert coloured_pixels(empty, CPU_BLUE) == 0
    chart.set_samples(
        [
            MetricSample(
                seq=i,
                ts=1000.0 + 10 * i,
                cpu_percent=20 + (i % 5) * 15,
                memory_percent=40.0,
                disk_percent=60.0,
                temperature_c=55.0 + i,
            )
            for i in range(60)
        ]
    )
    drawn = chart.grab().toImage()
    for _, colour, _ in LOAD_SERIES:
        assert coloured_pixels(drawn, QColor(colour)) > 10
    assert coloured_pixels(drawn, QColor("#b3261e")) > 10  # temperature


def test_samples_a_kit_overwrote_before_collection_are_counted() -> None:
    from agent.wire import MetricSample
    from app.gui.charts.history_chart import missed_samples

    def at(seq: int | None) -> MetricSample:
        return MetricSample(ts=float(seq or 0), cpu_percent=1, memory_percent=1, disk_percent=1, seq=seq)

    assert missed_samples([at(s) for s in (4, 5, 6)]) == 0
    assert missed_samples([at(s) for s in (9, 4, 5, 12)]) == 5  # 6-8 and 10-11, in any order
    assert missed_samples([at(None), at(3)]) == 0  # samples without a seq say nothing
