"""Start the desktop window: for real (`kitfleet`) or driven to a known state (`kitfleet demo`)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEventLoop, QMessageLogContext, QObject, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from app.fleet.settings import AppSettings
from app.gui import gc
from app.gui._qt import timer
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.main_window import MainWindow
from app.gui.tables.fleet_model import FleetTableModel

__all__ = ["run_demo_window", "run_gui"]

_SETTLE_MS = 300  # let layouts settle after the selection before the screenshot


def application() -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        gc.install(existing)
        return existing
    qInstallMessageHandler(_quiet_offscreen_noise)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("kitfleet")
    gc.install(app)
    return app


def _quiet_offscreen_noise(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    # The offscreen platform says these about every main window and raised dialog; not ours.
    if any(f"does not support {what}" in message for what in ("propagateSizeHints", "raise")):
        return
    print(message, file=sys.stderr)


def run_gui(settings: AppSettings) -> int:
    """Open the window and run until it is closed."""
    app = application()
    bridge = FleetBridge(settings)
    window = MainWindow(bridge)
    window.show()
    bridge.start()
    try:
        return app.exec()
    finally:
        bridge.close()


def run_demo_window(
    settings: AppSettings,
    adopted: int,
    screenshot: Path | None,
    offscreen: bool,
    timeout: float = 30.0,
    show_jobs: bool = False,
) -> int:
    """Show the window until `adopted` kits are online and the first one's facts show.

    Saves a screenshot then if asked; with `show_jobs`, a second one (`<name>-jobs.png`) of
    the first kit's Jobs tab once a finished benchmark shows there as a chart. Offscreen, returns
    at once (0, or 1 with a message on stderr when `timeout` seconds pass first); otherwise runs
    until the window closes.
    """
    application()
    bridge = FleetBridge(settings)
    window = MainWindow(bridge)
    window.show()
    driver = DemoDriver(window, adopted, screenshot, offscreen, timeout, show_jobs)
    # A local loop that ends with the window, not app.exec()/quit(): callers (tests, the
    # demo) keep a usable application afterwards.
    loop = QEventLoop()
    window.closed.connect(loop.quit)
    bridge.start()
    try:
        loop.exec()
    finally:
        bridge.close()
    return driver.result


class DemoDriver(QObject):
    """Watches the window, without blocking its event loop, until the demo state shows."""

    def __init__(
        self,
        window: MainWindow,
        adopted: int,
        screenshot: Path | None,
        offscreen: bool,
        timeout: float,
        show_jobs: bool = False,
    ) -> None:
        super().__init__(window)
        self._show_jobs = show_jobs
        self.result = 1
        self._window, self._adopted = window, adopted
        self._screenshot, self._offscreen, self._timeout = screenshot, offscreen, timeout
        self._waiting_for = f"{adopted} kits online with facts"
        self._poll = timer(self, 100, self._check)
        self._deadline = timer(self, int(timeout * 1000), self._time_out, single_shot=True)
        self._poll.start()
        self._deadline.start()

    def _check(self) -> None:
        online = self._online_in_view_order()
        if len(online) < self._adopted:
            return
        first = online[0]
        selected = self._window.selected_row()
        if selected is None or selected.device_id != first:
            self._window.select_device(first)
        elif self._window.details.shown_device() == first:
            self._poll.stop()
            self._deadline.stop()
            QTimer.singleShot(_SETTLE_MS, self._finish)

    def _online_in_view_order(self) -> list[str]:
        proxy = self._window.proxy
        ids = [str(proxy.index(i, 0).data(FleetTableModel.DeviceIdRole)) for i in range(proxy.rowCount())]
        return [i for i in ids if (row := self._window.model.row(i)) and row.row_status == "online"]

    def _finish(self) -> None:
        self.result = 0
        self._save(self._screenshot)
        if self._screenshot is None or not self._show_jobs:
            self._close()
            return
        # Then the Jobs tab, once the kit's finished jobs show, with its benchmark drawn.
        self._window.tabs.setCurrentWidget(self._window.tabs.jobs)
        self._waiting_for = "a finished benchmark job on the Jobs tab"
        self._poll.timeout.disconnect(self._check)
        self._poll.timeout.connect(self._check_jobs)
        self._poll.start()
        self._deadline.start()

    def _check_jobs(self) -> None:
        jobs = self._window.tabs.jobs
        benchmarks = [j.job_id for j in jobs.model.rows() if j.kind == "benchmark" and j.state == "done"]
        if not benchmarks:
            return
        self._poll.stop()
        self._deadline.stop()
        jobs.select_job(benchmarks[0])
        QTimer.singleShot(_SETTLE_MS, self._finish_jobs)

    def _finish_jobs(self) -> None:
        assert self._screenshot is not None
        self._save(self._screenshot.with_name(f"{self._screenshot.stem}-jobs{self._screenshot.suffix}"))
        self._close()

    def _save(self, path: Path | None) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._window.grab().save(str(path)):
            print(f"kitfleet: could not save {path}", file=sys.stderr)
            self.result = 1

    def _close(self) -> None:
        if self._offscreen:
            self._window.close()

    def _time_out(self) -> None:
        self._poll.stop()
        self.result = 1
        print(
            f"kitfleet: the window did not show {self._waiting_for} within {self._timeout:g} s",
            file=sys.stderr,
        )
        self._close()
