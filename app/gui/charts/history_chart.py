"""A kit's metrics history drawn with QPainter: load (CPU, memory, disk) and temperature.

PySide6-Essentials has no QtCharts, and pyqtgraph would add numpy-heavy start-up and its own
widget stack for two line plots; a paintEvent over a few hundred points is cheap and looks
the same offscreen, in tests and in screenshots.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from agent.wire import MetricSample
from app.fleet.svg_chart import downsample
from app.gui.tables.kit_row import KitRow, age_text

__all__ = ["LOAD_SERIES", "RANGES", "HistoryChart", "HistoryPanel"]

Getter = Callable[[MetricSample], float | None]
LOAD_SERIES: tuple[tuple[str, str, Getter], ...] = (
    ("CPU %", "#1f5fa8", lambda s: s.cpu_percent),
    ("memory %", "#8e44ad", lambda s: s.memory_percent),
    ("disk used %", "#b36b00", lambda s: s.disk_percent),
)
HEAT_SERIES: tuple[tuple[str, str, Getter], ...] = (
    ("hottest °C", "#b3261e", lambda s: s.temperature_c),
    ("battery %", "#1e7b34", lambda s: s.battery_percent),
    ("power W", "#c2185b", lambda s: s.power_w),  # measured only; absent where the kit cannot
)
RANGES = {"Last hour": 1.0, "Last 24 hours": 24.0, "Last 7 days": 168.0}
_MARGIN_LEFT, _MARGIN = 40, 8


class HistoryChart(QWidget):
    """Two plots sharing a time axis; shows 'no samples' rather than empty axes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(420, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._samples: list[MetricSample] = []
        self._stale = False

    def set_samples(self, samples: Sequence[MetricSample], stale: bool = False) -> None:
        self._samples, self._stale = list(samples), stale
        self.update()

    def samples(self) -> list[MetricSample]:
        return list(self._samples)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        text = self.palette().color(QPalette.ColorRole.Text)
        if not self._samples:
            painter.setPen(text)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No samples yet for this kit")
            return
        half = (self.height() - 3 * _MARGIN) / 2
        load = QRectF(_MARGIN_LEFT, _MARGIN + 14, self.width() - _MARGIN_LEFT - _MARGIN, half - 14)
        heat = QRectF(_MARGIN_LEFT, 2 * _MARGIN + half + 14, load.width(), half - 24)
        span = (self._samples[0].ts, self._samples[-1].ts)
        self._plot(painter, load, "Load", LOAD_SERIES, span, 100.0, text)
        self._plot(painter, heat, "Temperature, battery and power", HEAT_SERIES, span, None, text)
        painter.setPen(text)
        painter.drawText(
            QRectF(heat.left(), heat.bottom() + 2, heat.width(), 16),
            Qt.AlignmentFlag.AlignLeft,
            _clock(span[0]),
        )
        painter.drawText(
            QRectF(heat.left(), heat.bottom() + 2, heat.width(), 16),
            Qt.AlignmentFlag.AlignRight,
            _clock(span[1]),
        )
        painter.end()

    def _plot(
        self,
        painter: QPainter,
        area: QRectF,
        title: str,
        series: Sequence[tuple[str, str, Getter]],
        span: tuple[float, float],
        top: float | None,
        text: QColor,
    ) -> None:
        lines = [
            (name, colour, [(s.ts, v) for s in self._samples if (v := get(s)) is not None])
            for name, colour, get in series
        ]
        if not any(points for _, _, points in lines):
            painter.setPen(text)
            painter.drawText(
                area,
                Qt.AlignmentFlag.AlignCenter,
                f"{title}: not reported by this kit ({', '.join(n for n, _, _ in series)})",
            )
            return
        peak = top or max((v for _, _, pts in lines for _, v in pts), default=1.0) * 1.1 or 1.0
        grid = QColor(text)
        grid.setAlpha(50)
        painter.setPen(QPen(grid, 1))
        for fraction in (0.0, 0.5, 1.0):
            y = area.bottom() - fraction * area.height()
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.drawText(
                QRectF(0, y - 8, _MARGIN_LEFT - 4, 16),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{peak * fraction:.0f}",
            )
        legend_x = area.left()
        painter.setPen(text)
        painter.drawText(QPointF(legend_x, area.top() - 4), title + ("  (last known)" if self._stale else ""))
        legend_x += painter.fontMetrics().horizontalAdvance(title + "  (last known)") + 16
        width = (span[1] - span[0]) or 1.0
        for name, colour, points in lines:
            pen = QPen(QColor(colour), 1.6, Qt.PenStyle.DashLine if self._stale else Qt.PenStyle.SolidLine)
            painter.setPen(pen)
            painter.drawPolyline(
                QPolygonF(
                    [
                        QPointF(
                            area.left() + (x - span[0]) / width * area.width(),
                            area.bottom() - min(max(y, 0.0), peak) / peak * area.height(),
                        )
                        for x, y in downsample(points, max(2, int(area.width())))
                    ]
                )
            )
            label = name if points else f"{name}: no data"
            painter.fillRect(QRectF(legend_x, area.top() - 13, 9, 9), QColor(colour))
            painter.setPen(text)
            painter.drawText(QPointF(legend_x + 12, area.top() - 4), label)
            legend_x += painter.fontMetrics().horizontalAdvance(label) + 28


class HistoryPanel(QWidget):
    """The History tab: the selected kit's chart with a range; asks for data, never waits."""

    def __init__(self, request: Callable[[str, float], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._request = request
        self.range = QComboBox()
        self.range.addItems(list(RANGES))
        self.range.setCurrentIndex(1)
        self.range.currentIndexChanged.connect(lambda _: self.reload())
        self.note = QLabel()
        self.chart = HistoryChart()
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.range)
        top.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.chart, 1)
        self._row: KitRow | None = None
        self._polled: float | None = None

    def show_row(self, row: KitRow | None) -> None:
        """Ask for history when the kit changes, or when it answered a poll since the last ask."""
        changed = (row.device_id if row else None) != (self._row.device_id if self._row else None)
        polled = row.view.snapshot.taken_at if row and row.view and row.view.snapshot else None
        self._row = row
        if changed:
            self.chart.set_samples([])
        self._update_note()
        if changed or polled != self._polled:
            self._polled = polled
            self.reload()

    def reload(self) -> None:
        if self._row is not None and self._row.kit is not None:
            self._request(self._row.device_id, RANGES[self.range.currentText()])

    def apply_history(self, device_id: str, samples: list[MetricSample]) -> None:
        if self._row is not None and device_id == self._row.device_id:
            self.chart.set_samples(samples, stale=self._row.row_status != "online")
            self._update_note()

    def _update_note(self) -> None:
        row = self._row
        if row is None:
            self.note.setText("Select a kit to see its history.")
        elif row.row_status != "online" and row.view and row.view.snapshot:
            self.note.setText(
                f"{row.name} is {row.row_status}: history up to "
                f"{age_text(row.view.snapshot.taken_at)}, kept on this laptop"
            )
        else:
            samples = self.chart.samples()
            missed = missed_samples(samples)
            self.note.setText(
                f"{row.name}: {len(samples)} samples"
                + (f"; {missed} overwritten on the kit before this laptop collected them" if missed else "")
            )


def missed_samples(samples: Sequence[MetricSample]) -> int:
    """Gaps in the kit's sequence numbers: samples its ring overwrote while nobody collected."""
    seqs = sorted(s.seq for s in samples if s.seq is not None and s.seq >= 0)
    return sum(max(0, b - a - 1) for a, b in itertools.pairwise(seqs))


def _clock(ts: float) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(ts))
