"""Resumable dataset uploads: the archive arrives in as many pieces as the link allows.

The client names the archive's length first (`start`: refused at once if the limit or the disk
cannot take it), then sends bytes from the offset the kit reports (`append`), and when all have
come, `finish` unpacks them through the same checks as a one-piece upload (`Datasets`). The
partial archive and its length live in `datasets/.partial-<name>.*`, so a dropped link or an
agent restart loses nothing; a start with another length begins afresh.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agent.errors import Conflict
from agent.jobs.datasets import Datasets, _disk_full, _exists
from agent.models.store import check_name
from agent.spool import async_spool
from agent.toolkit.durable import write_atomic
from agent.wire import DatasetInfo, DatasetUpload

__all__ = ["DatasetUploads"]

_PARTIAL = ".partial-"
STALE_S = 7 * 86400.0  # an upload nobody resumed in a week is abandoned: its bytes go


class DatasetUploads:
    def __init__(self, datasets: Datasets) -> None:
        self.datasets = datasets
        for partial in datasets.root.glob(f"{_PARTIAL}*"):
            try:
                if time.time() - partial.stat().st_mtime > STALE_S:
                    partial.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: left as it is
                continue

    def start(self, name: str, size: int) -> DatasetUpload:
        """Begin, or resume one of the same length."""
        if (self.datasets.root / check_name(name)).exists():
            raise _exists(name)
        self.datasets.admit(size)
        archive, meta = self._paths(name)
        if self._size(name) != size or not archive.exists():
            self.datasets.check_space(2 * size)  # the archive, and its unpacked copy to come
            archive.write_bytes(b"")
            write_atomic(meta, json.dumps({"size": size}).encode())
        return self.status(name)

    def status(self, name: str) -> DatasetUpload:
        size = self._size(name)
        if size is None:
            raise _not_started(name)
        return DatasetUpload(name=name, size=size, offset=self._paths(name)[0].stat().st_size)

    async def append(self, name: str, offset: int, body: AsyncIterator[bytes]) -> DatasetUpload:
        """Write bytes that start at `offset`, which must be where the partial archive ends."""
        current = self.status(name)
        if offset != current.offset:
            raise Conflict(
                "offset_mismatch",
                f"the kit holds {current.offset} bytes of dataset {name}, not {offset}",
                "send the dataset again: kitfleet resumes from where the kit stands",
            )

        def admit(received: int) -> None:
            if offset + received > current.size:
                raise Conflict(
                    "upload_too_long",
                    f"more than the {current.size} bytes announced for dataset {name}",
                    "send the dataset again from the start",
                )

        archive = self._paths(name)[0]
        try:
            with archive.open("ab") as handle:
                await async_spool(body, handle.write, admit)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise _disk_full() from None
        return self.status(name)

    async def finish(self, name: str) -> DatasetInfo:
        """Unpack the complete archive into the dataset (the partial files go either way but a
        refusal for missing bytes, which a resumed send can still make good)."""
        current = self.status(name)
        if current.offset != current.size:
            raise Conflict(
                "upload_incomplete",
                f"the kit holds {current.offset} of the {current.size} bytes of dataset {name}",
                "send the dataset again: kitfleet resumes from where the kit stands",
            )
        archive, meta = self._paths(name)
        try:
            return await self.datasets.unpack_archive(name, archive)
        finally:
            meta.unlink(missing_ok=True)
            archive.unlink(missing_ok=True)

    def _paths(self, name: str) -> tuple[Path, Path]:
        stem = f"{_PARTIAL}{check_name(name)}"
        return self.datasets.root / f"{stem}.tar", self.datasets.root / f"{stem}.json"

    def _size(self, name: str) -> int | None:
        try:
            return int(json.loads(self._paths(name)[1].read_text())["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _not_started(name: str) -> Conflict:
    return Conflict(
        "upload_not_started",
        f"no upload of dataset {name} is under way on this kit",
        "send the dataset again (kitfleet starts a new upload)",
    )
