"""An upload's file on disk: bytes appended off the event loop, fsynced, and summed as written."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from agent.errors import NoRoom, TooLarge
from agent.spool import async_spool

__all__ = ["RunningSum", "append", "size_of", "too_long"]


class RunningSum:
    """The sha256 of an upload's bytes from byte 0, fed in order as they are written."""

    def __init__(self) -> None:
        self._sum = hashlib.sha256()
        self.offset = 0  # the bytes the sum covers

    def update(self, data: bytes) -> None:
        self._sum.update(data)
        self.offset += len(data)

    def hexdigest(self) -> str:
        return self._sum.hexdigest()


async def append(
    path: Path, current: int, size: int, body: AsyncIterator[bytes], running: RunningSum | None
) -> None:
    """Append `body` to the file at `path` (now `current` bytes of `size`), feeding `running`."""

    def admit(received: int) -> None:
        if current + received > size:
            raise too_long(size, current, received)

    handle = await asyncio.to_thread(path.open, "ab")  # the disk may be slow: off the loop

    def write(data: bytes) -> None:
        handle.write(data)
        if running is not None:  # only once written: the sum never covers a byte not on disk
            running.update(data)

    try:
        try:
            await async_spool(body, write, admit)
        finally:
            await asyncio.to_thread(_sync_and_close, handle)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise NoRoom(
            "disk_full", "the kit's disk is full", "free space on the kit, then resume the upload"
        ) from None


def too_long(size: int, at: int, sent: int) -> TooLarge:
    return TooLarge(
        "upload_too_long",
        f"{sent} bytes from byte {at} would pass the model's {size} bytes",
        f"send at most {size - at} bytes from byte {at}",
    )


def size_of(path: Path) -> int:
    """The file's size, -1 when it is gone (the upload was replaced meanwhile)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _sync_and_close(handle: BinaryIO) -> None:
    """Flush and fsync what arrived, whatever ended the request: a resumed upload goes on from it."""
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()
