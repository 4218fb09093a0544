"""uvicorn's server, waking once a second when idle instead of ten times.

uvicorn's main loop sleeps 0.1 s between ticks only to refresh its Date header once a second
and to notice a stop request. On an idle kit those ten wake-ups a second were most of the
agent's idle CPU (issue 19: an idle agent, even with 100,000 jobs queued, under 0.3 % of a
core). Here the loop ticks once a second, and a stop request wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

__all__ = ["QuietServer"]

TICK_S = 1.0
_TICKS_PER_DAY = 864_000  # uvicorn's counter, in its 0.1 s ticks


class QuietServer(uvicorn.Server):
    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            # every tick is a second: on_tick refreshes the Date header when counter % 10 == 0
            counter = (counter + 10) % _TICKS_PER_DAY
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
