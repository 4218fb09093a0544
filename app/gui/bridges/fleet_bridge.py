"""The window's link to the Qt-free fleet core: one asyncio loop on one background thread.

The GUI thread only submits work and receives plain data through queued signals, so
no network or sqlite call ever runs on it. The `Fleet` (and its sqlite inventory) is
created, used and closed on the loop thread only, because sqlite objects are
bound to the thread that made them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from PySide6.QtCore import QObject, Signal, Slot

from agent.wire import FactFamilies, Scope
from app.fleet.discovery import Announcement, Browser
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import FactsResult, Fleet, KitStatus
from app.fleet.settings import AppSettings
from app.gui.bridges.base import Failed, Work
from app.gui.bridges.jobs_bridge import JobsBridge
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.bridges.ops_bridge import OpsBridge
from app.gui.bridges.provision_bridge import ProvisionBridge
from app.gui.bridges.rollout_bridge import RolloutBridge
from app.gui.bridges.stream_bridge import StreamBridge
from app.gui.tables.kit_row import Sighting

__all__ = ["FleetBridge"]

log = logging.getLogger(__name__)


class FleetBridge(QObject):
    """Runs fleet work off the GUI thread; every answer comes back as a signal."""

    announced = Signal(object)  # Sighting
    withdrawn = Signal(str)  # device ID of a kit that stopped announcing
    kits_loaded = Signal(object)  # list[Kit]: the inventory, at start
    statuses = Signal(object)  # list[KitStatus]
    views = Signal(object)  # list[KitView]: figures, models, jobs, alerts, tags (last-known if away)
    facts_loaded = Signal(object)  # FactsResult
    adopted = Signal(object)  # Kit
    failed = Signal(str, str)  # (operation, message for the technician)

    def __init__(
        self, settings: AppSettings, poll_interval: float = 5.0, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self._poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        # Touched on the loop thread only.
        self._fleet: Fleet | None = None
        self._ops: FleetOps | None = None
        self._browser: Browser | None = None
        self._instances: dict[str, str] = {}  # mDNS instance name -> device ID
        self._facts_live: dict[str, bool] = {}  # were the last facts sent for a kit live?
        self._tasks: set[asyncio.Task[None]] = set()
        # Each sees this bridge as a BridgeHost (bridges/base.py): same loop, same error sorting.
        self.models = ModelsBridge(self, parent=self)  # list, activate, deploy, infer, quantize
        self.jobs = JobsBridge(self, parent=self)  # queue, submit, logs, results, schedules
        self.fleet_ops = OpsBridge(self, parent=self)  # history, tags, audit, report
        self.streams = StreamBridge(self, parent=self)  # stream jobs and their live view
        self.provisioning = ProvisionBridge(self, parent=self)  # install and adopt over SSH
        self.rollouts = RolloutBridge(self, parent=self)  # staged rollouts, followed live

    # called on the GUI thread -----------------------------------------------------

    def start(self) -> None:
        """Start the loop, the mDNS browser and the status poll; call after connecting."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kitfleet-bridge")
        self._thread.start()
        self.submit("start", self._async_start())

    @Slot(str, str, str)
    def adopt(self, ref: str, code: str, scope: Scope = "operator") -> None:
        self.submit("adopt", self._async_adopt(ref, code, scope))

    @Slot()
    def refresh(self) -> None:
        self.submit("refresh", self._async_refresh())

    def poll_kits(self, device_ids: list[str]) -> None:
        """Poll these kits in full now (models, jobs, audit): something was just done to them."""
        self.submit("status", self._async_poll_ids(device_ids))

    @Slot(str)
    def load_facts(self, device_id: str) -> None:
        self.submit("facts", self._async_load_facts(device_id))

    def close(self, timeout: float = 15.0) -> None:
        """Stop browsing and polling, close the inventory and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or self._closing:
            return
        self._closing = True
        # The one place the GUI thread waits: at exit, so the inventory closes cleanly.
        future = asyncio.run_coroutine_threadsafe(self._async_shutdown(), loop)
        try:
            future.result(timeout)
        except Exception:
            log.exception("the fleet did not shut down cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        self._loop = self._thread = None

    def submit(self, operation: str, work: Work, failed: Failed | None = None) -> None:
        """Run `work` on the loop thread; an `Error` it raises comes back as `failed`.

        `failed`: where this work's failure goes instead of the `failed` signal (a dialog that
        follows its own run); it is called on the loop thread, so it should emit a signal.
        """
        if self._loop is None or self._closing:
            work.close()  # never started, so never awaited: say so quietly
            return
        asyncio.run_coroutine_threadsafe(self._run(operation, work, failed), self._loop)

    # on the loop thread ----------------------------------------------------------

    @property
    def fleet(self) -> Fleet:
        assert self._fleet is not None, "FleetBridge.start() makes the fleet first"
        return self._fleet

    @property
    def settings(self) -> AppSettings:
        return self._settings

    @property
    def ops(self) -> FleetOps:
        assert self._ops is not None, "FleetBridge.start() makes the fleet first"
        return self._ops

    def _spawn(self, operation: str, work: Work) -> None:
        if self._closing:
            work.close()
            return
        # Hold a reference from the start (the loop keeps only weak ones); _run drops it.
        self._tasks.add(asyncio.ensure_future(self._run(operation, work)))

    async def _run(self, operation: str, work: Work, failed: Failed | None = None) -> None:
        """Run top-level work, tracked so shutdown can cancel it."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._guarded(operation, work, failed)
        finally:
            self._tasks.discard(task)

    async def _guarded(self, operation: str, work: Work, failed: Failed | None = None) -> None:
        """Known problems become messages; anything else is our bug and gets a traceback."""
        report = failed or self.failed.emit
        try:
            await work
        except Error as exc:
            report(operation, str(exc))
        except Exception as exc:
            log.exception("bug while running %s", operation)
            report(operation, f"internal error ({exc!r}); details are in the log")

    async def _async_start(self) -> None:
        self._fleet = Fleet(self._settings)  # first, before any await: other work needs it
        # Models, jobs and audit every 3rd poll: the figures stay live, the load a third.
        self._ops = FleetOps(self._fleet, keep_connections=True, detail_every=3)
        self.kits_loaded.emit(self._fleet.inventory.kits())
        self.views.emit(self._ops.views())  # last-known state at once, before any kit answers
        self._browser = Browser(self._settings.mdns_interfaces, self._on_announcement)
        await self._browser.async_start()
        self._spawn("status", self._async_poll_forever())

    async def _async_poll_forever(self) -> None:
        """A round every interval, counted from the start of the last, with a fifth of it to
        rest after a round that took longer. Each kit's kept connection then sits idle about
        an interval between its polls, under the time the app keeps it (IDLE_KEPT_S), also in
        a large fleet whose rounds take seconds."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._guarded("status", self._async_poll())
            took = loop.time() - started
            await asyncio.sleep(max(self._poll_interval - took, self._poll_interval / 5))

    async def _async_poll(self, kits: list[Kit] | None = None) -> None:
        polls = await self.ops.async_poll(kits)
        known = {k.device_id: k for k in self.fleet.inventory.kits()}
        statuses = [KitStatus(known.get(p.kit.device_id, p.kit), p.status, p.detail) for p in polls]
        self.statuses.emit(statuses)
        self.views.emit(self.ops.views_of(polls))
        # which kits are back, for the rollouts waiting on them
        self.rollouts.kits_polled(
            [s.kit.device_id for s in statuses], [s.kit.device_id for s in statuses if s.status == "online"]
        )
        read = {p.kit.device_id: p.facts for p in polls if p.facts is not None}
        # Concurrently: one slow kit must not hold back the facts of the others.
        await asyncio.gather(
            *(
                self._guarded("facts update", self._async_follow_facts(s, read.get(s.kit.device_id)))
                for s in statuses
            )
        )

    async def _async_follow_facts(self, status: KitStatus, read: FactFamilies | None = None) -> None:
        """Fetch facts once per session, and again whenever a kit comes back online; `read`:
        the facts this poll already read (a kit the inventory had none of), not asked again."""
        device_id, online = status.kit.device_id, status.status == "online"
        sent_live = self._facts_live.get(device_id)
        if sent_live is None or (online and not sent_live):
            result = (
                FactsResult(status.kit, read, time.time(), live=True)
                if read is not None
                else await self._async_facts(status, online)
            )
            self._facts_live[device_id] = result.live if result else False
            if result is not None:
                self.facts_loaded.emit(result)
        elif not online:
            self._facts_live[device_id] = False

    async def _async_facts(self, status: KitStatus, online: bool) -> FactsResult | None:
        if online:
            return await self.ops.async_facts(status.kit)  # over the poll's kept connection
        # Offline: the stored facts, without knocking on a door we know is shut.
        known = self.fleet.inventory.last_facts(status.kit.device_id)
        return (
            None
            if known is None
            else FactsResult(status.kit, known[0], known[1], live=False, detail=status.detail)
        )

    async def _async_refresh(self) -> None:
        self._facts_live.clear()  # a refresh re-reads every kit's facts too
        await self._async_poll()

    async def _async_load_facts(self, device_id: str) -> None:
        result = await self.fleet.async_facts(self.fleet.inventory.get(device_id))
        self._facts_live[device_id] = result.live
        self.facts_loaded.emit(result)

    async def _async_adopt(self, ref: str, code: str, scope: Scope) -> None:
        kit = await self.fleet.async_adopt(ref, code, scope)
        self.adopted.emit(kit)
        await self._async_poll([kit])

    def _on_announcement(self, instance: str, announcement: Announcement | None) -> None:
        if announcement is not None:
            self._instances[instance] = announcement.device_id
            self._spawn("discovery", self._async_sighted(announcement))
            return
        device_id = self._instances.pop(instance, None)
        if device_id is not None:
            self.withdrawn.emit(device_id)
            self._spawn("status", self._async_check(device_id))

    async def _async_sighted(self, announcement: Announcement) -> None:
        # An announcement from a new address is followed only if the key served there is the
        # pinned one; anything else claiming an adopted kit is a conflict and gets nothing.
        verdict = await self.fleet.async_check_announcement(announcement)
        known = {k.device_id: k for k in self.fleet.inventory.kits()}
        kit = known.get(announcement.device_id)
        if verdict.marking == "conflict" and kit is not None:
            # a copy of the kit's own announcement: its row keeps the real kit's address
            self.failed.emit("discovery", verdict.detail)
            return
        self.announced.emit(Sighting(announcement, verdict.marking))
        if verdict.detail and verdict.marking == "conflict":
            self.failed.emit("discovery", verdict.detail)
        if kit is not None and verdict.marking == "adopted":  # (re)appeared: say so now, not at the next poll
            await self._async_poll([kit])

    async def _async_poll_ids(self, device_ids: list[str]) -> None:
        kits = [k for k in self.fleet.inventory.kits() if k.device_id in set(device_ids)]
        if kits:
            await self._async_poll(kits)

    async def _async_check(self, device_id: str) -> None:
        """A kit that stops announcing has probably gone: check it now."""
        kits = [k for k in self.fleet.inventory.kits() if k.device_id == device_id]
        if kits:
            await self._async_poll(kits)

    async def _async_shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_close()
        if self._ops is not None:
            await self._ops.aclose()
        if self._fleet is not None:
            self._fleet.close()
        # Threads behind asyncio.to_thread (certificate fetch, scrypt) must end with us.
        await asyncio.get_running_loop().shutdown_default_executor()
