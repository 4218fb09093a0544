"""Render icons/kitfleet.svg to the PNG sizes desktops and PyInstaller want (run after editing it).

QT_QPA_PLATFORM=offscreen python packaging/icons/render.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt  # noqa: TID251 - a build tool, not the app
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: TID251
from PySide6.QtSvg import QSvgRenderer  # noqa: TID251

HERE = Path(__file__).resolve().parent
SIZES = (256, 48)


def render(svg: Path, size: int, out: Path) -> None:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    if not image.save(str(out)):
        raise SystemExit(f"could not write {out}")


def main() -> int:
    app = QGuiApplication(sys.argv)
    for size in SIZES:
        render(HERE / "kitfleet.svg", size, HERE / f"kitfleet-{size}.png")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
