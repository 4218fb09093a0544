"""A local folder of images as a dataset for jobs: packed into a tar stream on the fly.

The tar is written member by member while it is sent, so a large folder never sits in
memory or in a temporary file. The dataset's name carries a fingerprint of the files
(path, size, modification time): sending the same folder again finds it already on the
kit instead of uploading a second copy, and a changed folder gets a new name.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tarfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from agent.wire import DatasetInfo
from app.fleet.client import KitClient
from app.fleet.errors import AgentError, Error, KitUnreachable

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetError",
    "LocalDataset",
    "async_ensure",
    "async_tar_chunks",
    "scan",
    "scan_file",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})  # what the kit's jobs read
BLOCK = 512
CHUNK = 1 << 20
_END = bytes(2 * BLOCK)  # two zero blocks close a tar archive
_RESUMES = 3  # times a dropped upload is resumed at once, before the technician is told
_KNOWN_404 = frozenset({"dataset_not_found"})  # a 404 the kit means, not a route it lacks


class DatasetError(Error):
    """The folder cannot be sent as a dataset; nothing was uploaded."""


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    header: bytes

    @property
    def stored(self) -> int:
        """Bytes this member takes in the archive: header, data, padding to a block."""
        return len(self.header) + self.size + _padding(self.size)


@dataclass(frozen=True)
class LocalDataset:
    folder: Path
    name: str
    entries: tuple[_Entry, ...]

    @property
    def files(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        """The exact length of the tar stream, for progress."""
        return sum(e.stored for e in self.entries) + len(_END)


def scan(folder: Path) -> LocalDataset:
    """The images below `folder` (sub-folders kept, e.g. one per label), ready to send."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder on this computer")
    try:
        entries, fingerprint = _entries(folder)
    except OSError as exc:
        raise DatasetError(f"cannot read {folder}: {exc.strerror or exc}") from exc
    if not entries:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return LocalDataset(folder, f"{_slug(folder.resolve().name)}-{fingerprint[:10]}", tuple(entries))


def scan_file(path: Path) -> LocalDataset:
    """One file (a video) as a dataset holding it alone, named after it and its fingerprint."""
    if not path.is_file():
        raise DatasetError(f"{path} is not a file on this computer")
    try:
        stat = path.stat()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    entry = _entry(path, path.name, stat.st_size, stat.st_mtime)
    fingerprint = hashlib.sha256(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return LocalDataset(path.parent, f"{_slug(path.stem)}-{fingerprint.hexdigest()[:10]}", (entry,))


def _entry(path: Path, name: str, size: int, mtime: float) -> _Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    return _Entry(path, size, info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


async def async_ensure(
    client: KitClient, dataset: LocalDataset, sent: Callable[[int], None] | None = None
) -> DatasetInfo:
    """The dataset on the kit: found there from an earlier send, else uploaded resumably (its
    length announced first, so a kit refuses one over its limits or its free space before a
    byte goes; a dropped link is resumed from where the kit stands, here or by sending again)."""
    known = {d.name: d for d in await client.datasets()}
    if dataset.name in known:
        return known[dataset.name]
    try:
        return await _resumable(client, dataset, sent)
    except AgentError as exc:
        if exc.status in (404, 405) and exc.error not in _KNOWN_404:  # a kit from before resuming
            return await client.upload_dataset(dataset.name, async_tar_chunks(dataset, sent), dataset.size)
        if exc.error != "dataset_exists":  # a concurrent send won the race: same files, same name
            raise
        return next(d for d in await client.datasets() if d.name == dataset.name)


async def _resumable(
    client: KitClient, dataset: LocalDataset, sent: Callable[[int], None] | None
) -> DatasetInfo:
    for attempt in range(_RESUMES + 1):
        status = await client.start_dataset_upload(dataset.name, dataset.size)
        if status.offset >= status.size:
            break
        try:
            await client.send_dataset(
                dataset.name, status.offset, async_tar_chunks(dataset, sent, status.offset)
            )
            break
        except KitUnreachable:
            if attempt == _RESUMES:
                raise
            await asyncio.sleep(2.0**attempt)  # the link dropped: the kit keeps what came
    return await client.commit_dataset(dataset.name)


def _entries(folder: Path) -> tuple[list[_Entry], str]:
    """The images to send, and a digest of their names, sizes and modification times."""
    entries, fingerprint = [], hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            path.suffix.lower() not in IMAGE_SUFFIXES
            or not path.is_file()
            or any(part.startswith(".") for part in relative.parts)
        ):
            continue
        stat = path.stat()
        entries.append(_entry(path, relative.as_posix(), stat.st_size, stat.st_mtime))
        fingerprint.update(f"{relative.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return entries, fingerprint.hexdigest()


async def async_tar_chunks(
    dataset: LocalDataset, sent: Callable[[int], None] | None = None, start: int = 0
) -> AsyncIterator[bytes]:
    """The archive as a stream of chunks from byte `start` (the same bytes every time for the
    same files, so an upload resumes); `sent` hears the bytes produced so far."""
    produced = 0
    for entry in dataset.entries:
        if produced + entry.stored <= start:  # all before the resumed part: not even read
            produced += entry.stored
            continue
        skip = max(0, start - produced)
        produced += skip
        async for chunk in _member(entry, skip):
            produced += len(chunk)
            yield chunk
            if sent:
                sent(produced)
    yield _END[max(0, start - produced) :]
    if sent:
        sent(produced + len(_END))


async def _member(entry: _Entry, skip: int = 0) -> AsyncIterator[bytes]:
    """A member's header, data and padding, less its first `skip` bytes (a resumed upload's)."""
    if skip < len(entry.header):
        yield entry.header[skip:]
    into_data = max(0, skip - len(entry.header))
    remaining = entry.size - min(into_data, entry.size)
    try:
        handle = entry.path.open("rb")
    except OSError as exc:
        raise DatasetError(f"cannot read {entry.path}: {exc.strerror or exc}; send the folder again") from exc
    with handle:
        handle.seek(entry.size - remaining)
        while remaining:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
        if remaining or handle.read(1):  # the header promised a size: a changed file breaks the tar
            raise DatasetError(f"{entry.path} changed while it was being sent; send the folder again")
    pad = _padding(entry.size) - max(0, into_data - entry.size)
    if pad > 0:
        yield bytes(pad)


def _padding(size: int) -> int:
    return -size % BLOCK


def _slug(name: str) -> str:
    """A dataset name the kit accepts: lower-case letters, digits, - and _."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug[:40] or "images"
