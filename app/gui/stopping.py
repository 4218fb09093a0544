"""Ending the window from a POSIX signal handler (`kitfleet demo` on SIGTERM, SIGINT, SIGHUP)."""

from __future__ import annotations

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication


def close_windows_if_looping() -> bool:
    """Close every window when Qt's event loop is running (the handler runs inside a Qt
    callback, where a raised exception would only be printed); False when it is not."""
    if QThread.currentThread().loopLevel() == 0:
        return False
    QApplication.closeAllWindows()
    return True
