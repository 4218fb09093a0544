"""Write a streamed request body to a file without blocking the event loop.

A write to a slow disk (an SD card, a USB stick, a dying drive) can take seconds; done on the
event loop it would stall every other request meanwhile. Chunks are gathered and written in a
worker thread, so only the upload that waits for the disk waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

__all__ = ["BATCH_BYTES", "async_spool"]

BATCH_BYTES = 1 << 20  # gathered before one write: a thread hop per chunk would cost more than it saves


async def async_spool(
    body: AsyncIterator[bytes], write: Callable[[bytes], object], admit: Callable[[int], None]
) -> int:
    """Write `body` through `write` in a worker thread; returns the bytes written.

    `admit(total)` is called with the running total before each chunk is taken and raises to
    refuse it. Whatever was taken is written even when the body ends in an error (a dropped
    link, a refusal), so a resumable upload keeps every byte that arrived.
    """
    written = 0
    batch = bytearray()
    try:
        async for chunk in body:
            admit(written + len(batch) + len(chunk))
            batch += chunk
            if len(batch) >= BATCH_BYTES:
                await asyncio.to_thread(write, bytes(batch))
                written += len(batch)
                batch.clear()
    finally:
        if batch:
            await asyncio.to_thread(write, bytes(batch))
            written += len(batch)
    return written
