"""The Jobs tab's result view says a job's energy as the CLI does, with its source."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from agent.wire import JobInfo, JobRequest, MetricSample
from app.gui.charts.history_chart import HEAT_SERIES, HistoryChart
from app.gui.tabs.job_result_view import JobResultView, result_text
from tests.gui.test_fleet_ops_window import coloured_pixels

ENERGY = {
    "joules": 12.3,
    "avg_watts": 4.1,
    "seconds": 3.0,
    "source": "estimate",
    "note": "estimated from CPU time × 15 W TDP (not measured: this kit has no RAPL counters)",
    "inferences": 5125,
    "joules_per_1000_inferences": 2.4,
}
LINE = "energy 12.3 J, 4.1 W avg, 2.4 J per 1,000 inferences (estimated from CPU time × 15 W TDP)"


def _job(kind: str, result: dict[str, Any]) -> JobInfo:
    now = time.time()
    return JobInfo(
        job_id="a" * 24,
        kind=kind,  # type: ignore[arg-type]
        label="",
        state="done",
        request=JobRequest(kind="benchmark", params={"model": "m"}),
        attempts=1,
        progress={"done": 1, "total": 1},  # type: ignore[arg-type]
        created_at=now,
        started_at=now,
        finished_at=now,
        updated_at=now,
        result=result,
    )


def test_benchmark_chart_names_its_energy(qtbot: QtBot) -> None:
    view = JobResultView()
    qtbot.addWidget(view)
    view.show_job(_job("benchmark", {"model": "m", "sha256": "ab" * 32, "rows": [], "energy": ENERGY}))
    assert view.charted()
    assert LINE in view.summary.text()
    assert "no RAPL counters" in view.summary.toolTip()


def test_text_result_says_energy_in_words_not_json() -> None:
    text = result_text(_job("batch-infer", {"images": 3, "energy": ENERGY}))
    assert LINE in text
    assert '"joules"' not in text
    assert "images: 3" in text


def test_the_history_chart_draws_measured_power(qtbot: QtBot) -> None:
    [(_, colour, _)] = [s for s in HEAT_SERIES if s[0] == "power W"]
    chart = HistoryChart()
    qtbot.addWidget(chart)
    chart.resize(600, 300)

    def samples(power: float | None) -> list[MetricSample]:
        return [
            MetricSample(
                seq=i,
                ts=1000.0 + 10 * i,
                cpu_percent=20,
                memory_percent=40,
                disk_percent=60,
                power_w=None if power is None else power + i % 7,
            )
            for i in range(60)
        ]

    chart.set_samples(samples(None))
    assert coloured_pixels(chart.grab().toImage(), QColor(colour)) == 0, "a kit that cannot measure: no line"
    chart.set_samples(samples(8.0))
    assert coloured_pixels(chart.grab().toImage(), QColor(colour)) > 10
