"""Show an input image with a detector's boxes and labels drawn over it (GUI thread only)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from agent.wire import Detection

__all__ = ["PALETTE", "PictureView", "annotate", "box_colour"]

# Distinct at a glance, and readable under white label text.
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_LINE = 2.0
_HALO = QColor(255, 255, 255, 170)


def box_colour(index: int) -> QColor:
    return QColor(PALETTE[index % len(PALETTE)])


def annotate(image: QImage, detections: Sequence[Detection], size: QSize) -> QImage:
    """`image` scaled to fit `size`, boxes drawn at screen scale so thin lines stay thin."""
    scaled = image.scaled(
        size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    canvas = scaled.convertToFormat(QImage.Format.Format_ARGB32)
    if image.width() == 0 or not detections:
        return canvas
    factor = canvas.width() / image.width()
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(12)
    painter.setFont(font)
    for detection in detections:
        x1, y1, x2, y2 = (value * factor for value in detection.box)
        _draw_box(painter, QRectF(QPointF(x1, y1), QPointF(x2, y2)), detection)
    painter.end()
    return canvas


def _draw_box(painter: QPainter, box: QRectF, detection: Detection) -> None:
    colour = box_colour(detection.index)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    # A pale halo under the line keeps a red box visible on a red object.
    painter.setPen(QPen(_HALO, _LINE + 2))
    painter.drawRect(box)
    painter.setPen(QPen(colour, _LINE))
    painter.drawRect(box)
    text = f"{detection.label} {detection.score:.2f}"
    metrics = QFontMetricsF(painter.font())
    tag = QRectF(0, 0, metrics.horizontalAdvance(text) + 8, metrics.height() + 2)
    # Above the box when there is room, else just inside its top edge.
    top = box.top() - tag.height() if box.top() >= tag.height() else box.top()
    tag.moveTo(box.left() - _LINE / 2, top)
    painter.fillRect(tag, colour)
    painter.setPen(QColor("white"))
    painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)


class PictureView(QLabel):
    """Keeps the original image and redraws it, annotated, whenever its size changes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setStyleSheet("background: #2b2b2b; color: #d0d0d0;")
        self._image = QImage()
        self._detections: list[Detection] = []

    def show_picture(self, image: QImage, detections: Sequence[Detection] = ()) -> None:
        self._image, self._detections = image, list(detections)
        self._redraw()

    def clear_picture(self, text: str = "") -> None:
        self._image, self._detections = QImage(), []
        self.clear()
        self.setText(text)

    def detections(self) -> list[Detection]:
        return list(self._detections)

    def sizeHint(self) -> QSize:
        return QSize(360, 270)

    def minimumSizeHint(self) -> QSize:
        # Not the pixmap's size: that would stop the window from ever shrinking again.
        return QSize(160, 120)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._redraw()

    def _redraw(self) -> None:
        if self._image.isNull():
            return
        room = self.contentsRect().size() - QSize(8, 8)
        self.setPixmap(QPixmap.fromImage(annotate(self._image, self._detections, room)))
