"""A kit's inference answer as table rows: ranked labels with score bars, boxes, or raw outputs."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QProgressBar, QTableWidget, QTableWidgetItem

from agent.wire import InferResult
from app.fleet.inference import InferAnswer
from app.gui.charts.picture import box_colour

__all__ = ["ResultsTable", "summary_text"]

_SCORE_STEPS = 1000


def summary_text(answer: InferAnswer) -> str:
    """Which model answered (version, sha256) and how long the kit took."""
    result = answer.result
    if result is None:
        return f"raw model: {len(answer.outputs)} outputs (shapes below)"
    found = {
        "classification": f"top {len(result.classes or [])} labels",
        "detection": f"{len(result.detections or [])} objects found",
    }.get(result.task, "")
    return (
        f"{result.model} {result.version} · sha256 {result.sha256[:12]}… · "
        f"{result.latency_ms:.1f} ms on the kit · {found}"
    )


class ResultsTable(QTableWidget):
    def __init__(self) -> None:
        super().__init__(0, 2)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.verticalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)

    def show_answer(self, answer: InferAnswer) -> None:
        result = answer.result
        if result is None:
            self._start(["Output", "Shape", "Type"], len(answer.outputs))
            for row, output in enumerate(answer.outputs):
                shape = " × ".join(str(d) for d in output.shape) or "scalar"
                self._texts(row, output.name, shape, output.dtype)
        elif result.task == "detection":
            self._show_detections(result)
        else:
            self._show_classes(result)
        self.resizeColumnToContents(0)
        if self.horizontalHeader().sectionSize(0) < 120:
            self.horizontalHeader().resizeSection(0, 120)

    def texts(self, column: int) -> list[str]:
        """What one column shows, top to bottom (score bars give their text)."""
        values = []
        for row in range(self.rowCount()):
            widget = self.cellWidget(row, column)
            item = self.item(row, column)
            values.append(
                widget.text() if isinstance(widget, QProgressBar) else item.text() if item is not None else ""
            )
        return values

    def clear_answer(self) -> None:
        self._start(["Label", "Score"], 0)

    def _show_classes(self, result: InferResult) -> None:
        classes = result.classes or []
        self._start(["Label", "Score"], len(classes))
        for row, entry in enumerate(classes):
            self._texts(row, entry.label)
            self._bar(row, entry.score)

    def _show_detections(self, result: InferResult) -> None:
        detections = result.detections or []
        self._start(["Label", "Score", "Box (x1, y1, x2, y2)"], len(detections))
        for row, entry in enumerate(detections):
            self._texts(row, entry.label)
            label = self.item(row, 0)
            if label is not None:  # in the colour of its box on the picture
                label.setForeground(box_colour(entry.index))
            self._bar(row, entry.score)
            self._texts(row, "", "", ", ".join(f"{v:.0f}" for v in entry.box))

    def _start(self, headers: list[str], rows: int) -> None:
        self.setRowCount(0)  # drops the old rows' items and score bars
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(rows)

    def _texts(self, row: int, *values: str) -> None:
        for column, value in enumerate(values):
            if value:
                self.setItem(row, column, QTableWidgetItem(value))

    def _bar(self, row: int, score: float) -> None:
        bar = QProgressBar()
        bar.setRange(0, _SCORE_STEPS)
        bar.setValue(round(max(0.0, min(1.0, score)) * _SCORE_STEPS))
        bar.setFormat(f"{score:.3f}")
        self.setCellWidget(row, 1, bar)
        if self.columnWidth(1) < 180:
            self.setColumnWidth(1, 180)
