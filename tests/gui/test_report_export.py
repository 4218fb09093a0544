"""Export Report from the window, as HTML or as PDF (as `kitfleet report --pdf`), against a real kit;
the printed report's column headers are never broken inside a word ("Batter y")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSizeF
from PySide6.QtGui import QPageLayout, QTextDocument, QTextTable
from pytestqt.logging import _QtMessageCapture as QtLog  # the qtlog fixture's type
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.ops_window import OpsPrompts
from app.gui.report_pdf import PAGE, report_document
from tests.gui.job_windows import DIGITS
from tests.gui.kits import adopt, deploy
from tests.gui.windows import open_window, wait_status

CSS_PX_PER_POINT = 96 / 72


def header_lines(document: QTextDocument, width: float) -> dict[str, int]:
    """Lines each table header takes when the document is laid out `width` pixels wide."""
    document.setPageSize(QSizeF(width, 100_000))
    document.documentLayout().documentSize()  # lays it out
    lines: dict[str, int] = {}
    for frame in document.rootFrame().childFrames():
        if isinstance(frame, QTextTable):
            for column in range(frame.columns()):
                block = frame.cellAt(0, column).firstCursorPosition().block()
                text = block.text().replace("\N{NO-BREAK SPACE}", " ")  # as nowrap keeps them
                lines[text] = max(lines.get(text, 0), block.layout().lineCount())
    return lines


def test_export_report_writes_a_pdf_whose_headers_keep_their_words(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    qtlog: QtLog,
) -> None:
    [device] = adopt(settings, start_agent("report-kit"))
    deploy(settings, DIGITS)
    window = open_window(qtbot, bridge, Prompts())
    wait_status(qtbot, window, device, "online")
    pdf = tmp_path / "day.pdf"
    window.fleet_ops.prompts = OpsPrompts(choose_report=lambda parent, suggested: pdf)
    window.fleet_ops.export_action.trigger()
    qtbot.waitUntil(lambda: window.fleet_ops.export_action.isEnabled(), timeout=60_000)
    assert pdf.read_bytes().startswith(b"%PDF")
    html = pdf.with_suffix(".html")
    assert "report-kit" in html.read_text()  # kept beside it, as the CLI does
    assert window.statusBar().currentMessage() == f"Field report written to {pdf}"
    assert not [r.message for r in qtlog.records if "QBasicTimer" in r.message]  # printed on a Qt thread

    # A4 landscape as printed, and portrait, where Qt used to break "Battery" into "Batter y"
    portrait = QPageLayout(PAGE.pageSize(), QPageLayout.Orientation.Portrait, PAGE.margins())
    for page in (PAGE, portrait):
        width = page.paintRect(QPageLayout.Unit.Point).width() * CSS_PX_PER_POINT
        lines = header_lines(report_document(html), width)
        assert {"Battery", "Running", "Last seen", "Device ID"} <= set(lines)
        assert {h: n for h, n in lines.items() if n > 1} == {}, width
