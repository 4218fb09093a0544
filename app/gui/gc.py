"""Run Python's cyclic garbage collector on the GUI thread only.

Left automatic, the collector runs in whichever thread happens to allocate: the
bridge's loop thread or zeroconf's. If a cycle it frees holds a Qt wrapper, Qt
objects get destroyed off the GUI thread, which crashes (seen as a segfault
"Garbage-collecting" on a worker thread). So automatic collection is switched
off and a timer collects here, generation by generation as the counts demand
(the pattern qutebrowser and eric use).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._threshold = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(_INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> None:
        counts = gc.get_count()
        if counts[0] > self._threshold[0]:
            generation = 0
            if counts[1] > self._threshold[1]:
                generation = 2 if counts[2] > self._threshold[2] else 1
            gc.collect(generation)


def install(app: QObject) -> GuiThreadCollector:
    """Once per application; returns the existing collector when there is one."""
    existing = app.findChild(GuiThreadCollector)
    return existing if isinstance(existing, GuiThreadCollector) else GuiThreadCollector(app)


def uninstall(app: QObject) -> None:
    """Back to automatic collection (tests that share the interpreter with non-Qt tests)."""
    existing = app.findChild(GuiThreadCollector)
    if isinstance(existing, GuiThreadCollector):
        existing._timer.stop()
        existing.deleteLater()
        existing.setParent(None)
    gc.enable()
