"""Datasets uploaded as tar archives, unpacked under `<data_dir>/datasets/<name>`.

Only plain files and folders are unpacked; links, devices and names leaving the
folder refuse the whole archive. The archive is streamed to a bounded temp file,
unpacked into a staging folder and renamed into place, so a half-unpacked dataset
is never visible to a job.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath

from agent.api.schemas import DatasetInfo
from agent.errors import ApiError
from agent.jobs.paths import DATASETS
from agent.models.store import check_name
from agent.storage import fsync_dir

_STAGING = ".staging-"


class Datasets:
    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.root = data_dir / DATASETS
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(f"{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)

    async def upload(self, name: str, body: AsyncIterator[bytes]) -> DatasetInfo:
        target = self.root / check_name(name)
        if target.exists():
            raise ApiError(409, "dataset_exists", f"dataset {name!r} is already on the kit",
                           f"delete it first with DELETE /v1/datasets/{name}, or use another name")
        fd, archive = tempfile.mkstemp(prefix=_STAGING, suffix=".tar", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                await self._receive(body, handle.write)
            await asyncio.to_thread(self._unpack, Path(archive), target)
        finally:
            Path(archive).unlink(missing_ok=True)
        return self.info(name)

    async def _receive(self, body: AsyncIterator[bytes], write: Callable[[bytes], object]) -> None:
        size = 0
        async for chunk in body:
            size += len(chunk)
            if size > self.max_bytes:
                raise ApiError(413, "dataset_too_large", f"the archive is larger than {self.max_bytes} bytes",
                               "split it, or raise max_dataset_bytes in agent.json")
            write(chunk)

    def _unpack(self, archive: Path, target: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.root))
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member)
                tar.extractall(staging, members=members, filter="data")
            fsync_dir(staging)
            os.replace(staging, target)
            fsync_dir(self.root)
        except (tarfile.TarError, EOFError) as exc:
            raise ApiError(422, "bad_archive", f"the body is not a readable tar archive ({exc})",
                           "send a .tar (optionally gzip-compressed) of image files") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def info(self, name: str) -> DatasetInfo:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise ApiError(404, "dataset_not_found", f"no dataset called {name!r} on this kit",
                           "list datasets with GET /v1/datasets")
        files = [p for p in folder.rglob("*") if p.is_file()]
        return DatasetInfo(name=name, files=len(files), size=sum(p.stat().st_size for p in files))

    def all(self) -> list[DatasetInfo]:
        return [self.info(p.name) for p in sorted(self.root.iterdir())
                if p.is_dir() and not p.name.startswith(".")]

    def delete(self, name: str) -> None:
        self.info(name)
        shutil.rmtree(self.root / name)


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()) or path.is_absolute() or ".." in path.parts:
        raise ApiError(422, "bad_archive", f"the archive holds {member.name!r}, which is not a plain "
                       "file or folder inside the dataset", "pack only image files and folders")
