"""How late the GUI thread's event loop runs a 10 ms timer: the measure of a window that stutters.

Used by benchmarks/fleet_scale.py; small enough to switch on when diagnosing a slow window.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, QTimer

__all__ = ["LagProbe", "run_until"]


class LagProbe(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lags_ms: list[float] = []
        self._interval = interval_ms
        self._clock = QElapsedTimer()
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._clock.start()
        self._last = 0.0
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed() / 1e6
        if self._last:
            self.lags_ms.append(max(0.0, now - self._last - self._interval))
        self._last = now


def run_until(done: Callable[[], bool], check_ms: int = 200) -> None:
    """Run the GUI event loop until `done()` says so."""
    loop = QEventLoop()
    check = QTimer()
    check.setInterval(check_ms)
    check.timeout.connect(lambda: loop.quit() if done() else None)
    check.start()
    loop.exec()
    check.stop()
