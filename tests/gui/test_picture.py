"""Answers drawn and listed: boxes on the picture in their label's colour, raw outputs by shape."""

from __future__ import annotations

import io

import numpy as np

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from agent.wire import Detection
from app.fleet.inference import InferAnswer, npz_outputs
from app.gui.charts.picture import PictureView, annotate, box_colour
from app.gui.tables.results_table import ResultsTable, summary_text


def grey(width: int, height: int) -> QImage:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("#808080"))
    return image


def test_boxes_are_drawn_at_the_scale_the_picture_is_shown(qtbot: QtBot) -> None:
    found = [Detection(label="car", index=1, score=0.9, box=(20, 40, 60, 80))]
    drawn = annotate(grey(100, 100), found, QSize(300, 200))
    assert drawn.size() == QSize(200, 200)  # aspect kept: the height limits it
    assert drawn.pixelColor(40, 120) == box_colour(1)  # left edge, at ×2
    assert drawn.pixelColor(80, 120) == QColor("#808080")  # inside the box: untouched
    assert annotate(grey(100, 100), [], QSize(50, 50)).size() == QSize(50, 50)


def test_the_view_keeps_its_detections_and_clears(qtbot: QtBot) -> None:
    view = PictureView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show_picture(grey(64, 64), [Detection(label="a", index=0, score=0.5, box=(1, 2, 3, 4))])
    assert len(view.detections()) == 1
    assert view.pixmap().height() > 64  # scaled up to the room it has
    view.clear_picture("nothing yet")
    assert view.detections() == []
    assert view.text() == "nothing yet"


def test_a_raw_answer_lists_its_outputs_by_name_and_shape(qtbot: QtBot) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, scores=np.zeros((1, 10), np.float32), boxes=np.zeros((1, 5, 4), np.int64))
    answer = InferAnswer(b"\x93NUMPY", None, npz_outputs(buffer.getvalue()))
    table = ResultsTable()
    qtbot.addWidget(table)
    table.show_answer(answer)
    assert table.texts(0) == ["scores", "boxes"]
    assert table.texts(1) == ["1 × 10", "1 × 5 × 4"]
    assert table.texts(2) == ["float32", "int64"]
    assert summary_text(answer) == "raw model: 2 outputs (shapes below)"
