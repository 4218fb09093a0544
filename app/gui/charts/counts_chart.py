"""Detections per label over time, drawn with QPainter (PySide6-Essentials has no QtCharts).

`CountsHistory` (Qt-free) turns the running totals of a stream's stats events into a rate
per label per second, a bounded number of points; `CountsChart` only draws it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.gui.charts.picture import PALETTE

__all__ = ["CountsChart", "CountsHistory"]

POINTS = 120  # two minutes at one stats event a second
_MARGIN = 8.0
_AXIS = 34.0  # room for the value labels on the left


@dataclass
class CountsHistory:
    """(seconds since the first point, {label: detections per second}), newest last."""

    points: deque[tuple[float, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=POINTS))
    labels: list[str] = field(default_factory=list)  # in order of first sight: colours stay put
    _last: tuple[float, dict[str, int]] | None = None
    _origin: float | None = None

    def add(self, stats: Mapping[str, Any]) -> bool:
        """Take one stats event; True when it added a point (the second event on)."""
        at, totals = stats.get("updated_at"), stats.get("totals")
        if not isinstance(at, (int, float)) or not isinstance(totals, Mapping):
            return False
        totals = {str(k): int(v) for k, v in totals.items()}
        previous, self._last = self._last, (float(at), totals)
        self._origin = float(at) if self._origin is None else self._origin
        if previous is None or at <= previous[0] or any(v < previous[1].get(k, 0) for k, v in totals.items()):
            return False  # first event, the same one again, or a new attempt counting afresh
        for label in totals:
            if label not in self.labels:
                self.labels.append(label)
        span = at - previous[0]
        rates = {label: (totals.get(label, 0) - previous[1].get(label, 0)) / span for label in self.labels}
        self.points.append((at - self._origin, rates))
        return True

    def peak(self) -> float:
        return max((v for _, rates in self.points for v in rates.values()), default=0.0)

    def colour(self, label: str) -> str:
        return PALETTE[self.labels.index(label) % len(PALETTE)]


class CountsChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = CountsHistory()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(120)

    def sizeHint(self) -> QSize:
        return QSize(420, 160)

    def add(self, stats: Mapping[str, Any]) -> None:
        if self.history.add(stats):
            self.update()

    def clear(self) -> None:
        self.history = CountsHistory()
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont()
        font.setPixelSize(11)
        painter.setFont(font)
        plot = QRectF(_AXIS, _MARGIN + 14, self.width() - _AXIS - _MARGIN, self.height() - 2 * _MARGIN - 14)
        painter.fillRect(self.rect(), self.palette().base())
        top = max(self.history.peak(), 1.0)
        self._axes(painter, plot, top)
        if len(self.history.points) >= 2:
            self._lines(painter, plot, top)
        else:
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "waiting for counts…")
        self._legend(painter)
        painter.end()

    def _axes(self, painter: QPainter, plot: QRectF, top: float) -> None:
        painter.setPen(QPen(self.palette().mid().color(), 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.drawLine(plot.bottomLeft(), plot.topLeft())
        painter.setPen(self.palette().text().color())
        for value, y in ((top, plot.top()), (0.0, plot.bottom())):
            painter.drawText(
                QRectF(0, y - 7, _AXIS - 4, 14),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{value:.3g}",
            )
        painter.drawText(QRectF(0, 0, _AXIS + 120, 14), Qt.AlignmentFlag.AlignLeft, "detections/s")

    def _lines(self, painter: QPainter, plot: QRectF, top: float) -> None:
        points = list(self.history.points)
        first, last = points[0][0], points[-1][0]
        span = max(last - first, 1e-9)
        for label in self.history.labels:
            line = QPolygonF(
                [
                    QPointF(
                        plot.left() + plot.width() * (t - first) / span,
                        plot.bottom() - plot.height() * rates.get(label, 0.0) / top,
                    )
                    for t, rates in points
                ]
            )
            painter.setPen(QPen(QColor(self.history.colour(label)), 2))
            painter.drawPolyline(line)

    def _legend(self, painter: QPainter) -> None:
        x = self.width() - _MARGIN
        for label in reversed(self.history.labels):
            width = painter.fontMetrics().horizontalAdvance(label) + 18
            x -= width
            painter.fillRect(QRectF(x, _MARGIN / 2 + 3, 10, 10), QColor(self.history.colour(label)))
            painter.setPen(self.palette().text().color())
            painter.drawText(QRectF(x + 13, _MARGIN / 2, width, 16), Qt.AlignmentFlag.AlignLeft, label)
