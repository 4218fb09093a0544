"""Stream jobs for the window (start, watch live, stop), run on the host bridge's loop.

Every method is called on the GUI thread and only submits a coroutine; the coroutine runs on
the loop thread and answers with signals carrying plain data. A watch is a long-lived task:
`unwatch` (or the bridge's shutdown) cancels it, which closes its connection to the kit.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QObject, Signal

from app.fleet.stream import LiveEvent, StreamOptions, async_follow, async_start, async_stop
from app.gui.bridges.base import BridgeHost, SubBridge

__all__ = ["StreamBridge"]

_Key = tuple[str, str]  # (device ID, job ID)


class StreamBridge(SubBridge):
    started = Signal(str, object)  # (device ID, JobInfo of the new stream job)
    stopped = Signal(str, object)  # (device ID, JobInfo)
    streams_loaded = Signal(str, object)  # (device ID, list[JobInfo]: its unfinished stream jobs)
    live = Signal(str, str, object)  # (device ID, job ID, LiveEvent)
    frame = Signal(str, str, bytes)  # (device ID, job ID, the latest annotated frame as JPEG)
    watch_ended = Signal(str, str)  # (device ID, job ID): the live view closed, for any reason

    def __init__(self, host: BridgeHost, parent: QObject | None = None) -> None:
        super().__init__(host, parent)
        self._watches: dict[_Key, asyncio.Task[None]] = {}  # touched on the loop thread only

    # called on the GUI thread ---------------------------------------------------------

    def start_stream(self, device_id: str, options: StreamOptions) -> None:
        self._submit("start stream", self._async_start(device_id, options))

    def stop_stream(self, device_id: str, job_id: str) -> None:
        self._submit("stop stream", self._async_stop(device_id, job_id))

    def load_streams(self, device_id: str) -> None:
        self._submit("stream jobs", self._async_load(device_id))

    def watch(self, device_id: str, job_id: str) -> None:
        self._submit("live view", self._async_watch(device_id, job_id))

    def unwatch(self, device_id: str, job_id: str) -> None:
        self._submit("live view", self._async_unwatch((device_id, job_id)))

    # on the loop thread -----------------------------------------------------------------

    async def _async_start(self, device_id: str, options: StreamOptions) -> None:
        self.started.emit(device_id, await async_start(self._host.fleet, self._kit(device_id), options))

    async def _async_stop(self, device_id: str, job_id: str) -> None:
        self.stopped.emit(device_id, await async_stop(self._host.fleet, self._kit(device_id), job_id))

    async def _async_load(self, device_id: str) -> None:
        jobs = await self._on_kit(device_id, lambda c: c.jobs(["queued", "running"]))
        self.streams_loaded.emit(device_id, [job for job in jobs if job.kind == "stream"])

    async def _async_watch(self, device_id: str, job_id: str) -> None:
        key = (device_id, job_id)
        await self._async_unwatch(key)  # one live view per job
        task = asyncio.current_task()
        assert task is not None
        self._watches[key] = task

        def on_event(event: LiveEvent) -> None:
            self.live.emit(device_id, job_id, event)

        def on_frame(jpeg: bytes) -> None:
            self.frame.emit(device_id, job_id, jpeg)

        try:
            await async_follow(self._host.fleet, self._kit(device_id), job_id, on_event, on_frame)
        finally:
            if self._watches.get(key) is task:
                del self._watches[key]
            self.watch_ended.emit(device_id, job_id)

    async def _async_unwatch(self, key: _Key) -> None:
        task = self._watches.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
