"""Print the field report's HTML to PDF with Qt alone (QTextDocument + QPdfWriter).

QTextDocument does not draw inline SVG, so each chart is rendered to an image first
(QSvgRenderer) and put in its place; the rest is the report's own HTML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtCore import QByteArray, QMarginsF, QUrl
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
    QTextOption,
)
from PySide6.QtSvg import QSvgRenderer

from app.fleet.errors import Error

__all__ = ["PAGE", "print_pdf", "report_document"]

_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
_SCALE = 2  # chart images at twice their size, so they stay sharp on paper
PAGE = QPageLayout(
    QPageSize(QPageSize.PageSizeId.A4),
    QPageLayout.Orientation.Landscape,
    QMarginsF(12, 12, 12, 12),
    QPageLayout.Unit.Millimeter,
)


def print_pdf(html_file: Path, pdf_file: Path) -> Path:
    """Write `pdf_file` from the report at `html_file`; a QGuiApplication is made if none runs."""
    if QGuiApplication.instance() is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _keep.append(QGuiApplication([]))
    document = report_document(html_file)
    writer = QPdfWriter(str(pdf_file))
    writer.setPageLayout(PAGE)
    writer.setTitle(html_file.stem)
    document.print_(writer)  # paginates
    if not pdf_file.exists() or pdf_file.stat().st_size == 0:
        raise Error(f"Qt wrote no PDF to {pdf_file}; check the folder is writable")
    return pdf_file


def report_document(html_file: Path) -> QTextDocument:
    """The report as Qt prints it: charts as images, words never broken inside."""
    document = QTextDocument()
    # Qt's default wraps anywhere once a word does not fit its cell ("Batter y"); a word that
    # does not fit now widens its column instead.
    option = document.defaultTextOption()
    option.setWrapMode(QTextOption.WrapMode.WordWrap)
    document.setDefaultTextOption(option)
    text = _SVG.sub(lambda m: _chart_image(document, m.group(0)), html_file.read_text(encoding="utf-8"))
    document.setHtml(text)
    return document


_keep: list[QGuiApplication] = []  # the application made here lives as long as the process
_counter = [0]


def _chart_image(document: QTextDocument, svg: str) -> str:
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    size = renderer.defaultSize()
    image = QImage(size.width() * _SCALE, size.height() * _SCALE, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    _counter[0] += 1
    name = f"chart-{_counter[0]}.png"
    document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    return f'<img src="{name}" width="{size.width()}" height="{size.height()}">'
