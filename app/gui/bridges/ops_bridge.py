"""Fleet-operations work for the window (history, tags, audit, report), run on the bridge's loop.

Called on the GUI thread, it only submits coroutines; answers come back as signals with plain
data. The report is rendered in a worker thread: a big fleet's HTML must not stall polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QThreadPool, Signal

from app.fleet.errors import Error
from app.fleet.ops import FleetOps
from app.fleet.report import async_build_report, write_report
from app.gui.bridges.base import SubBridge
from app.gui.report_pdf import print_pdf

__all__ = ["OpsBridge"]


class OpsBridge(SubBridge):
    history_loaded = Signal(str, object)  # (device ID, list[MetricSample] in time order)
    tags_changed = Signal(str, object)  # (device ID, list[str])
    audit_loaded = Signal(str, object, object)  # (device ID or "" for the app, entries, ChainStatus|None)
    report_progress = Signal(str)  # what the report is doing now
    report_written = Signal(object)  # Path
    preflight_done = Signal(object)  # list[KitPreflight], one per kit asked about
    clocks_set = Signal(object)  # list[str], one line per kit: how far its clock moved, or why not

    @property
    def ops(self) -> FleetOps:
        return self._host.ops

    # called on the GUI thread ---------------------------------------------------------

    def load_history(self, device_id: str, hours: float) -> None:
        self._submit("history", self._async_history(device_id, hours))

    def set_tags(self, device_id: str, tags: list[str]) -> None:
        self._submit("tags", self._async_tags(device_id, tags))

    def load_audit(self, device_id: str = "") -> None:
        """The app's log (no device ID), or a kit's log pulled again and verified whole."""
        self._submit("audit", self._async_audit(device_id))

    def export_report(self, out: Path, hours: float = 24.0, pdf: Path | None = None) -> None:
        """Write the HTML report to `out`, then print it to `pdf` if given."""
        self._submit("report", self._async_report(out, hours, pdf))

    def run_preflight(self, device_ids: list[str]) -> None:
        """The pre-flight checks of these kits (`kitfleet preflight`), recorded in the audit log."""
        self._submit("preflight", self._async_preflight(device_ids))

    def set_clocks(self, device_ids: list[str]) -> None:
        """Set these kits' clocks to the laptop's (`kitfleet set-clock`), audited on both sides."""
        self._submit("clock", self._async_set_clocks(device_ids))

    # on the loop thread -----------------------------------------------------------------

    async def _async_set_clocks(self, device_ids: list[str]) -> None:
        from app.fleet.clock import async_set_clock

        said = []
        for kit in [self._kit(d) for d in device_ids]:
            try:
                answer = await async_set_clock(self._host.fleet, kit)
            except Error as exc:
                said.append(f"{kit.name}: not set: {exc}")
                continue
            said.append(f"{kit.name}: clock moved {answer.adjusted_s:+.1f} s")
        self.clocks_set.emit(said)

    async def _async_preflight(self, device_ids: list[str]) -> None:
        from app.fleet.preflight import async_preflight, planned_request

        kits = [self._kit(d) for d in device_ids]
        self.preflight_done.emit(await async_preflight(self._host.fleet, kits, planned_request(None)))

    async def _async_history(self, device_id: str, hours: float) -> None:
        latest = self.ops.history.latest(device_id)
        since = latest.ts - hours * 3600 if latest else 0.0
        self.history_loaded.emit(device_id, self.ops.history.series(device_id, since))

    async def _async_tags(self, device_id: str, tags: list[str]) -> None:
        kept = self.ops.tags.set(device_id, tags)
        self.tags_changed.emit(device_id, kept)
        self._host.views.emit([self.ops.view(device_id)])

    async def _async_audit(self, device_id: str) -> None:
        audit = self.ops.audit
        if not device_id:
            self.audit_loaded.emit("", audit.entries(), None)
            return
        kit = self._kit(device_id)
        chain = audit.chain_status(device_id)
        if kit.scope != "admin":
            chain = replace(chain, note=f"the app's token has the {kit.scope} scope; the log needs admin")
        elif kit.state != "identity_changed":
            try:
                chain = await self.ops.async_verify_audit(kit)
            except Error as exc:  # away: the copy held, said to be one
                chain = replace(chain, note=f"copy pulled before; the kit did not answer: {exc}")
        self.audit_loaded.emit(device_id, audit.kit_entries(device_id), chain)

    async def _async_report(self, out: Path, hours: float, pdf: Path | None) -> None:
        self.report_progress.emit("Polling every kit and verifying audit logs…")
        report = await async_build_report(self._host.fleet, hours)
        self.report_progress.emit(f"Writing {out.name}…")
        written = await asyncio.to_thread(write_report, report, out)
        if pdf is not None:
            self.report_progress.emit(f"Printing {pdf.name}…")
            written = await _in_qt_thread(print_pdf, written, pdf)
        self.report_written.emit(written)


async def _in_qt_thread(work: Callable[[Path, Path], Path], html: Path, pdf: Path) -> Path:
    """`work` on a thread of Qt's pool: Qt's text layout and PDF writer need a thread Qt made
    (timers), not the GUI thread, which a big fleet's report would stall."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Path] = loop.create_future()

    def finish(printed: Path | None, error: Exception | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(printed or pdf)

    def run() -> None:
        printed, error = None, None
        try:
            printed = work(html, pdf)
        except Exception as exc:  # handed to the loop, which sorts it by cause
            error = exc
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile: nobody waits
            loop.call_soon_threadsafe(finish, printed, error)

    QThreadPool.globalInstance().start(run)
    return await done
