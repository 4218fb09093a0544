"""Terminal manners: a spinner only where a person watches, and lines as kits appear."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

from app.fleet.text import printable

_FRAMES = "|/-\\"


class Spinner:
    """`listening… 2 s` turning on stderr while something runs, on a terminal only (a log or a
    pipe gets no carriage returns). `say` prints a line above it as results come in."""

    def __init__(self, text: str, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.text = text
        self._started = time.monotonic()

    def say(self, line: str) -> None:
        self._clear()
        print(printable(line), file=self.out, flush=True)

    def _clear(self) -> None:
        if self.live:
            self.out.write("\r\x1b[2K")

    def _draw(self, frame: int) -> None:
        took = time.monotonic() - self._started
        self.out.write(f"\r\x1b[2K{_FRAMES[frame % len(_FRAMES)]} {self.text} {took:.0f} s")
        self.out.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Spinner]:
        task = asyncio.ensure_future(self._spin()) if self.live else None
        try:
            yield self
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._clear()
                self.out.flush()

    async def _spin(self) -> None:
        frame = 0
        while True:
            self._draw(frame)
            frame += 1
            await asyncio.sleep(0.1)
