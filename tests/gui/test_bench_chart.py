"""The benchmark chart drawn from real measurements: the bundled digits model timed by the
benchmark job's own code, and a fixed-batch model whose other batch sizes are skipped."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from agent.jobs.kinds import benchmark
from agent.jobs.report import Reporter
from agent.wire import InputSpec, Manifest
from app.gui.charts.bench_chart import BenchChart, chart_data, nice_ticks, render_chart
from resources import models_dir
from tests.onnx_models import conv_classifier

WIDTH, HEIGHT = 800, 360


def measure(model: Path, manifest: dict[str, Any], tmp_path: Path, **params: Any) -> dict[str, Any]:
    """What a benchmark job on a kit reports, measured here with the job's own code."""
    spec = {
        "params": {"threads": [], "runs": 10, "warmup": 1, **params},
        "threads": 1,
        "model": {"manifest": manifest, "path": str(model)},
    }
    return benchmark.run(spec, Reporter(io.StringIO(), tmp_path, 1 << 20))


def pixels(image: QImage, colour: str, top: int = 0) -> int:
    """How many pixels below `top` are exactly `colour` (bar interiors are not antialiased)."""
    wanted = QColor(colour).rgb()
    return sum(
        image.pixel(x, y) == wanted for y in range(top, image.height()) for x in range(0, image.width(), 2)
    )


def drawn_rows(image: QImage, left: int, right: int) -> int:
    """Rows with anything but white between `left` and `right`: text and bars leave ink."""
    white = QColor("white").rgb()
    return sum(any(image.pixel(x, y) != white for x in range(left, right)) for y in range(image.height()))


def test_latency_bars_per_batch_and_thread_count_with_axes_and_labels(tmp_path: Path) -> None:
    manifest = json.loads((models_dir() / "digits-cnn-fp32.manifest.json").read_text())
    result = measure(
        models_dir() / "digits-cnn-fp32.onnx", manifest, tmp_path, batch_sizes=[1, 8], threads=[1, 2]
    )
    data = chart_data(result)
    assert data.title == "digits-cnn 1.0 · latency per call (ms)"
    assert data.axis_title == "ms per call"
    assert data.series == ("p50", "p95", "p99")
    assert data.groups == (
        "batch 1 · 1 thread",
        "batch 8 · 1 thread",
        "batch 1 · 2 threads",
        "batch 8 · 2 threads",
    )
    highest = max(row["p99_ms"] for row in result["rows"])
    assert data.ticks[0] == 0
    assert data.ticks[-2] < highest <= data.top
    assert data.tick_labels == tuple(f"{t:g}" for t in data.ticks)
    for values, row in zip(data.values, result["rows"], strict=True):
        assert values == (row["p50_ms"], row["p95_ms"], row["p99_ms"])

    image = render_chart(data, WIDTH, HEIGHT)
    legend_bottom = 60  # the legend's swatches share the bars' colours; count below them
    counts = {
        name: pixels(image, colour, legend_bottom)
        for name, colour in zip(data.series, data.colours, strict=True)
    }
    assert all(count > 30 for count in counts.values()), counts
    assert counts["p99"] >= counts["p50"], "p99 bars are never shorter than p50 bars"
    assert drawn_rows(image, 0, 40) > 40, "the tick labels and the axis title are drawn"
    assert drawn_rows(image, 100, WIDTH) > HEIGHT // 2


def test_throughput_view_leaves_a_skipped_batch_size_empty(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "fixed.onnx", dims=(1, 3, 16, 16))  # takes batches of 1 only
    manifest = Manifest(
        name="fixed",
        version="2",
        task="classification",
        input=InputSpec(name="image", height=16, width=16),
        labels=list("abcd"),
        sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        size_bytes=model.stat().st_size,
    )
    result = measure(model, manifest.model_dump(), tmp_path, batch_sizes=[1, 4])
    assert result["rows"][1]["skipped"] == "the model takes batches of 1 only"

    data = chart_data(result, "throughput")
    assert data.series == ("items/s",)
    assert data.axis_title == "items per second"
    assert data.values[0] == (result["rows"][0]["throughput_per_s"],)
    assert data.values[1] is None
    assert data.skipped == ("", "the model takes batches of 1 only")
    image = render_chart(data, WIDTH, HEIGHT)
    [green] = data.colours
    left_half = image.copy(0, 0, WIDTH // 2, HEIGHT)
    right_half = image.copy(WIDTH // 2, 0, WIDTH // 2, HEIGHT)
    assert pixels(left_half, green, 60) > 100
    assert pixels(right_half, green, 60) == 0, "no bar for the skipped batch size"
    unexplained = render_chart(replace(data, skipped=("", "")), WIDTH, HEIGHT)
    assert right_half != unexplained.copy(WIDTH // 2, 0, WIDTH // 2, HEIGHT), "it says why instead"
    assert left_half == unexplained.copy(0, 0, WIDTH // 2, HEIGHT)


def test_ticks_are_round_numbers_just_above_the_highest_value() -> None:
    assert nice_ticks(0.87) == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert nice_ticks(16.14) == (0.0, 5.0, 10.0, 15.0, 20.0)
    assert nice_ticks(1099.0) == (0.0, 250.0, 500.0, 750.0, 1000.0, 1250.0)
    assert nice_ticks(10.0) == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert nice_ticks(0.0) == (0.0, 1.0)


def test_the_widget_draws_what_it_was_given(qtbot: QtBot, tmp_path: Path) -> None:
    manifest = json.loads((models_dir() / "digits-cnn-int8.manifest.json").read_text())
    result = measure(models_dir() / "digits-cnn-int8.onnx", manifest, tmp_path, batch_sizes=[2])
    chart = BenchChart()
    qtbot.addWidget(chart)
    chart.resize(WIDTH, HEIGHT)
    chart.show()
    empty = chart.grab().toImage()
    chart.show_result(result)
    assert chart.data is not None
    assert chart.data.groups == ("batch 2 · 1 thread",)
    drawn = chart.grab().toImage()
    p50 = chart.data.colours[0]
    assert pixels(empty, p50) == 0
    assert pixels(drawn.convertToFormat(QImage.Format.Format_RGB32), p50, 60) > 100
