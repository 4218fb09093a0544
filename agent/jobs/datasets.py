"""Datasets uploaded as tar archives, unpacked under `<data_dir>/datasets/<name>`.

Only plain files and folders are unpacked; links, devices and names leaving the
folder refuse the whole archive. The archive is streamed to a bounded temp file,
measured as it unpacks (bytes, files, room on the disk; `archives.py`), unpacked
into a staging folder and renamed into place, so a half-unpacked dataset is never
visible to a job.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from agent.errors import Conflict, NoRoom, NotFound, TooLarge
from agent.jobs import archives
from agent.jobs.paths import DATASETS
from agent.models.store import check_name
from agent.spool import async_spool
from agent.toolkit.durable import fsync_path
from agent.wire import DatasetInfo

_STAGING = ".staging-"
_SPACE_CHECK = 8 << 20  # bytes between free-space checks while an archive arrives


class Datasets:
    def __init__(
        self, data_dir: Path, max_bytes: int, reserve_bytes: int = 0, max_files: int = 100_000
    ) -> None:
        self.root = data_dir / DATASETS
        self.max_bytes = max_bytes  # as sent, and as unpacked
        self.max_files = max_files  # files and folders, as unpacked
        self.reserve_bytes = reserve_bytes  # space a dataset never takes, as for model uploads
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(f"{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)

    async def upload(self, name: str, body: AsyncIterator[bytes], declared: int | None = None) -> DatasetInfo:
        """Receive, measure and unpack an archive; one `declared` (Content-Length) too large for
        the limit or the disk is refused before a byte is read."""
        target = self.root / check_name(name)
        if target.exists():
            raise _exists(name)
        if declared is not None:
            self.admit(declared)
            self.check_space(2 * declared)  # the archive, and its unpacked copy to come
        fd, archive = tempfile.mkstemp(prefix=_STAGING, suffix=".tar", dir=self.root)
        try:
            try:
                handle = os.fdopen(fd, "wb")
                try:
                    await self._receive(body, handle.write)
                finally:
                    await asyncio.to_thread(handle.close)  # flushes the last bytes: the disk may be slow
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                raise _disk_full() from None
            return await self.unpack_archive(name, Path(archive))
        finally:
            Path(archive).unlink(missing_ok=True)

    async def unpack_archive(self, name: str, archive: Path) -> DatasetInfo:
        """Measure and unpack a received archive into dataset `name` (a one-piece upload's, or
        a resumable one's once complete)."""
        target = self.root / check_name(name)
        try:
            await asyncio.to_thread(self._unpack, archive, target)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise _disk_full() from None
        return self.info(name)

    async def _receive(self, body: AsyncIterator[bytes], write: Callable[[bytes], object]) -> None:
        checked = 0  # the size at the last free-space check

        def admit(size: int) -> None:
            nonlocal checked
            self.admit(size)
            if size // _SPACE_CHECK != checked // _SPACE_CHECK:
                self.check_space(2 * size)  # the archive, and its unpacked copy to come
                checked = size

        size = await async_spool(body, write, admit)  # written off the event loop
        self.check_space(size)  # room to unpack beside the archive

    def admit(self, size: int) -> None:
        """Refuse an archive larger than the kit takes (413)."""
        if size > self.max_bytes:
            raise TooLarge(
                "dataset_too_large",
                f"the archive is larger than {self.max_bytes} bytes",
                "split it, or raise max_dataset_bytes in agent.json",
            )

    def check_space(self, needed: int) -> None:
        """Refuse what would eat into the reserve of free space (507)."""
        free = shutil.disk_usage(self.root).free
        if free - needed < self.reserve_bytes:
            raise NoRoom(
                "insufficient_storage",
                f"the kit has {free >> 20} MiB free; this dataset needs about {needed >> 20} MiB "
                f"more plus {self.reserve_bytes >> 20} MiB in reserve",
                "delete old datasets or model versions, or send fewer images",
            )

    def _unpack(self, archive: Path, target: Path) -> None:
        contents = archives.survey(archive, self.max_bytes, self.max_files)
        self.check_space(contents.disk_bytes)  # what it unpacks to, not what was sent
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.root))
        try:
            archives.unpack(archive, staging, contents)
            fsync_path(staging)
            try:
                os.replace(staging, target)
            except OSError as exc:  # another upload of the same name finished first
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise _exists(target.name) from None
            fsync_path(self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def place(self, name: str, size: int, files: int, fill: Callable[[Path], None]) -> DatasetInfo:
        """Make dataset `name` from files that `fill` writes into a staging folder (a bundle's
        members), held to the same limits as an uploaded archive and renamed into place whole."""
        target = self.root / check_name(name)
        if target.exists():
            raise _exists(name)
        self.admit(size)
        if files > self.max_files:
            raise TooLarge(
                "dataset_too_many_files",
                f"the dataset has {files} files; the kit takes at most {self.max_files}",
                "split it, or raise max_dataset_files in agent.json",
            )
        self.check_space(size)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.root))
        try:
            try:
                fill(staging)
                fsync_path(staging)
                os.replace(staging, target)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise _disk_full() from None
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise _exists(name) from None
                raise
            fsync_path(self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.info(name)

    def info(self, name: str) -> DatasetInfo:
        folder = self.root / check_name(name)
        if not folder.is_dir() or folder.is_symlink():  # an uploaded dataset is never a link
            raise NotFound(
                "dataset_not_found",
                f"no dataset called {name!r} on this kit",
                "send a local folder with `kitfleet jobs submit KIT ... --upload DIR`, which makes it",
            )
        files = [p for p in folder.rglob("*") if p.is_file()]
        return DatasetInfo(name=name, files=len(files), size=sum(p.stat().st_size for p in files))

    def all(self) -> list[DatasetInfo]:
        return [
            self.info(p.name)
            for p in sorted(self.root.iterdir())
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        ]

    def delete(self, name: str) -> None:
        self.info(name)
        shutil.rmtree(self.root / name)


def _exists(name: str) -> Conflict:
    return Conflict(
        "dataset_exists",
        f"dataset {name!r} is already on the kit",
        "send the folder under another name (a dataset is named after the folder: rename it)",
    )


def _disk_full() -> NoRoom:
    return NoRoom(
        "disk_full",
        "the kit's disk filled up while the dataset arrived",
        "free space on the kit, then send the dataset again",
    )
