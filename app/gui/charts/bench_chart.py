"""A benchmark job's result as a bar chart: latency p50/p95/p99, or throughput, per batch × threads.

PySide6-Essentials has no QtCharts, so this is QPainter. The numbers and labels are worked
out first (`chart_data`, Qt-free) and only then drawn, so what the chart says can be checked
without reading pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

__all__ = [
    "BenchChart",
    "BenchPoint",
    "ChartData",
    "Metric",
    "bench_points",
    "chart_data",
    "nice_ticks",
    "render_chart",
    "value_label",
]

Metric = Literal["latency", "throughput"]
_LATENCY = (("p50", "p50_ms", "#4e79a7"), ("p95", "p95_ms", "#f28e2b"), ("p99", "p99_ms", "#e15759"))
_THROUGHPUT = (("items/s", "throughput_per_s", "#59a14f"),)
_MARGIN = 10.0
_BAR_GAP = 0.2  # of a group's width, left free between groups
_CENTRED_WRAPPED = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap


@dataclass(frozen=True)
class BenchPoint:
    batch: int
    threads: int
    values: Mapping[str, float]  # the row's numeric fields (p50_ms, throughput_per_s, …)
    skipped: str | None = None


@dataclass(frozen=True)
class ChartData:
    title: str
    axis_title: str
    series: tuple[str, ...]
    colours: tuple[str, ...]
    groups: tuple[str, ...]  # "batch 8 · 2 threads", one per measured combination
    values: tuple[tuple[float, ...] | None, ...]  # per group, one per series; None when skipped
    skipped: tuple[str, ...]  # per group: why it was not measured, or ""
    ticks: tuple[float, ...]
    tick_labels: tuple[str, ...]

    @property
    def top(self) -> float:
        return self.ticks[-1]


def bench_points(result: Mapping[str, Any]) -> list[BenchPoint]:
    """The rows of a benchmark result (agent/jobs/kinds/benchmark.py); malformed rows are left out."""
    points = []
    for row in result.get("rows", []):
        if not isinstance(row, Mapping) or not {"batch", "threads"} <= row.keys():
            continue
        values = {
            k: float(v)
            for k, v in row.items()
            if isinstance(v, int | float) and k not in ("batch", "threads")
        }
        skipped = row.get("skipped")
        points.append(
            BenchPoint(int(row["batch"]), int(row["threads"]), values, str(skipped) if skipped else None)
        )
    return points


def chart_data(result: Mapping[str, Any], metric: Metric = "latency") -> ChartData:
    points = bench_points(result)
    columns = _LATENCY if metric == "latency" else _THROUGHPUT
    values = tuple(
        None if p.skipped else tuple(p.values.get(key, 0.0) for _, key, _ in columns) for p in points
    )
    highest = max((v for group in values if group for v in group), default=0.0)
    ticks = nice_ticks(highest)
    model = " ".join(str(result[k]) for k in ("model", "version") if result.get(k))
    what = "latency per call (ms)" if metric == "latency" else "throughput (items/s)"
    return ChartData(
        title=f"{model} · {what}" if model else what,
        axis_title="ms per call" if metric == "latency" else "items per second",
        series=tuple(name for name, _, _ in columns),
        colours=tuple(c for _, _, c in columns),
        groups=tuple(f"batch {p.batch} · {p.threads} thread{'' if p.threads == 1 else 's'}" for p in points),
        values=values,
        skipped=tuple(p.skipped or "" for p in points),
        ticks=ticks,
        tick_labels=tuple(f"{t:g}" for t in ticks),
    )


def nice_ticks(highest: float, target: int = 5) -> tuple[float, ...]:
    """0 up to just above `highest` in steps of 1, 2, 2.5 or 5 × a power of ten."""
    if not highest > 0:
        return (0.0, 1.0)
    raw = highest / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return tuple(round(i * step, 10) for i in range(math.ceil(highest / step - 1e-9) + 1))


def value_label(value: float) -> str:
    """Three significant digits for small values, whole numbers with separators for large ones."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


class BenchChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(360, 200)
        self.data: ChartData | None = None

    def show_result(self, result: Mapping[str, Any] | None, metric: Metric = "latency") -> None:
        self.data = None if result is None else chart_data(result, metric)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(720, 320)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            paint(painter, QRectF(self.rect()), self.data, self.font())
        finally:
            painter.end()


def render_chart(data: ChartData | None, width: int, height: int) -> QImage:
    """The chart drawn into an image (reports, tests) the same way the widget draws it."""
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        paint(painter, QRectF(0, 0, width, height), data, QFont())
    finally:
        painter.end()
    return image


def paint(painter: QPainter, area: QRectF, data: ChartData | None, font: QFont) -> None:
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setFont(font)
    painter.fillRect(area, QColor("white"))
    painter.setPen(QColor("#202124"))
    if data is None or not data.groups:
        painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "No benchmark measurements to show.")
        return
    metrics = QFontMetricsF(font)
    line = metrics.height()
    plot = _plot_area(area, data, metrics)
    _draw_title_and_legend(painter, area, data, metrics)
    _draw_axis(painter, plot, data, metrics)
    slot = plot.width() / len(data.groups)
    for index, (label, values) in enumerate(zip(data.groups, data.values, strict=True)):
        cell = QRectF(plot.left() + index * slot, plot.top(), slot, plot.height())
        if values is None:
            painter.setPen(QColor("#80868b"))
            painter.drawText(cell.adjusted(8, 0, -8, 0), _CENTRED_WRAPPED, f"skipped: {data.skipped[index]}")
        else:
            _draw_bars(painter, cell, values, data, metrics)
        painter.setPen(QColor("#202124"))
        painter.drawText(
            QRectF(cell.left(), plot.bottom() + 4, slot, 2 * line),
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
            label.replace(" · ", "\n"),
        )


def _plot_area(area: QRectF, data: ChartData, metrics: QFontMetricsF) -> QRectF:
    line = metrics.height()
    left = _MARGIN + line + 6 + max(metrics.horizontalAdvance(t) for t in data.tick_labels) + 6
    top = _MARGIN + 2 * line + 8
    bottom = _MARGIN + 2 * line + 8
    return area.adjusted(left, top, -_MARGIN, -bottom)


def _draw_title_and_legend(painter: QPainter, area: QRectF, data: ChartData, metrics: QFontMetricsF) -> None:
    line = metrics.height()
    bold = QFont(painter.font())
    bold.setBold(True)
    painter.save()
    painter.setFont(bold)
    painter.drawText(
        QRectF(area.left() + _MARGIN, area.top() + _MARGIN, area.width(), line),
        Qt.AlignmentFlag.AlignLeft,
        data.title,
    )
    painter.restore()
    x = area.right() - _MARGIN
    for name, colour in reversed(list(zip(data.series, data.colours, strict=True))):
        x -= metrics.horizontalAdvance(name)
        painter.drawText(QPointF(x, area.top() + _MARGIN + line + metrics.ascent()), name)
        x -= line + 4
        painter.fillRect(QRectF(x, area.top() + _MARGIN + line + 2, line - 4, line - 4), QColor(colour))
        x -= 12


def _draw_axis(painter: QPainter, plot: QRectF, data: ChartData, metrics: QFontMetricsF) -> None:
    grid, axis = QPen(QColor("#dadce0")), QPen(QColor("#5f6368"))
    for tick, label in zip(data.ticks, data.tick_labels, strict=True):
        y = plot.bottom() - tick / data.top * plot.height()
        painter.setPen(grid if tick else axis)
        painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        painter.setPen(QColor("#202124"))
        width = metrics.horizontalAdvance(label)
        painter.drawText(QPointF(plot.left() - 6 - width, y + metrics.ascent() / 2 - 1), label)
    painter.setPen(axis)
    painter.drawLine(plot.bottomLeft(), plot.topLeft())
    painter.save()  # the axis title reads bottom to top along the left edge
    painter.translate(
        plot.left() - metrics.horizontalAdvance(max(data.tick_labels, key=len)) - 14, plot.center().y()
    )
    painter.rotate(-90)
    painter.setPen(QColor("#202124"))
    half = metrics.horizontalAdvance(data.axis_title) / 2
    painter.drawText(QPointF(-half, -metrics.descent()), data.axis_title)
    painter.restore()


def _draw_bars(
    painter: QPainter, cell: QRectF, values: tuple[float, ...], data: ChartData, metrics: QFontMetricsF
) -> None:
    inner = cell.adjusted(cell.width() * _BAR_GAP / 2, 0, -cell.width() * _BAR_GAP / 2, 0)
    width = inner.width() / len(values)
    for index, (value, colour) in enumerate(zip(values, data.colours, strict=True)):
        height = value / data.top * cell.height()
        bar = QRectF(inner.left() + index * width + 1, cell.bottom() - height, width - 2, height)
        painter.fillRect(bar, QColor(colour))
        text = value_label(value)
        if metrics.horizontalAdvance(text) <= width:  # label a bar only where it fits
            painter.setPen(QColor("#202124"))
            painter.drawText(
                QRectF(bar.left() - 1, bar.top() - metrics.height() - 1, width, metrics.height()),
                Qt.AlignmentFlag.AlignHCenter,
                text,
            )
