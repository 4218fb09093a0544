"""Dataset archives (tar, plain or gzip, bzip2, xz compressed) measured, then unpacked, within bounds.

What counts is what an archive unpacks to: 0.3 MiB of gzip can hold 300 MiB of zeros. So the
archive is read twice as a stream: first only its headers, summed and counted against the limits
before anything is written (`survey`); then unpacked, never writing more than that first pass
summed (`unpack`). The decompressed stream is bounded too: between two members no more is read
than the member's data and a header's room, so a header that claims gigabytes (a PAX record, a
long name, which tarfile would read into memory) is refused instead.

Only plain files and folders are unpacked, by this module rather than tarfile's extraction
(whose `filter=` is missing on Python 3.10 and 3.11 builds before 3.10.12 / 3.11.4).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol

from agent.errors import Invalid, TooLarge

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["HEADER_ROOM", "Contents", "survey", "unpack"]

HEADER_ROOM = 1 << 20  # what one member's headers (long names, PAX records) and read-ahead may take
_HEADERS_PER_ENTRY = 4096  # headers and padding of an ordinary member, macOS's extended ones included
_BLOCK_ON_DISK = 4096  # what a file or folder takes on disk beyond its data
_COPY = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Contents:
    """What an archive unpacks to, from its headers."""

    entries: int  # files and folders
    size: int  # bytes of file data
    stream: int  # bytes of the (decompressed) tar stream read to find them

    @property
    def disk_bytes(self) -> int:
        return self.size + self.entries * _BLOCK_ON_DISK


def survey(archive: Path, max_bytes: int, max_entries: int) -> Contents:
    """Sum the members' sizes and count them, refusing (413) as soon as a limit is passed."""
    size = entries = 0
    with _members(archive, max_bytes + max_entries * _HEADERS_PER_ENTRY + HEADER_ROOM) as members:
        for member in members:
            size += member.size if member.isfile() else 0
            entries += 1
            if size > max_bytes:
                raise TooLarge(
                    "dataset_too_large",
                    f"the archive unpacks to more than {max_bytes} bytes",
                    "split it, or raise max_dataset_bytes in agent.json",
                )
            if entries > max_entries:
                raise TooLarge(
                    "dataset_too_many_files",
                    f"the archive holds more than {max_entries} files and folders",
                    "split it, or raise max_dataset_files in agent.json",
                )
        return Contents(entries, size, members.consumed)


def unpack(archive: Path, folder: Path, contents: Contents) -> None:
    """Unpack the plain files and folders of a surveyed archive into `folder`, writing at most
    `contents.size` bytes and `contents.entries` entries whatever the archive holds by now."""
    left, entries = contents.size, 0
    with _members(archive, contents.stream + HEADER_ROOM) as members:
        for member in members:
            entries += 1
            if entries > contents.entries or (member.isfile() and member.size > left):
                raise _bad(f"{member.name!r} was not in the archive when it was measured")
            try:
                _unpack_one(members, member, folder)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise _bad(f"the archive holds {member.name!r} twice, or as a file and a folder") from None
            left -= member.size if member.isfile() else 0


class _Members:
    """The members of a tar stream, checked, each opened for reading while it is the current one."""

    def __init__(self, tar: tarfile.TarFile, bounded: _Bounded) -> None:
        self._tar, self._bounded = tar, bounded

    @property
    def consumed(self) -> int:
        return self._bounded.consumed

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while (member := self._tar.next()) is not None:
            # a stream keeps every header it read, which 100,000 members would make add up
            self._tar.members.clear()  # type: ignore[attr-defined]  # (missing from typeshed)
            self._bounded.allow(member.size if member.isfile() else 0)
            _check_member(member)
            yield member

    def open(self, member: tarfile.TarInfo) -> IO[bytes]:
        source = self._tar.extractfile(member)
        assert source is not None  # a plain file
        return source


@contextmanager
def _members(archive: Path, max_stream: int) -> Iterator[_Members]:
    """The archive's members, its tar stream read to `max_stream` bytes at most; damage and
    bounds passed refuse it (422)."""
    with archive.open("rb") as raw:
        bounded = _Bounded(_decompressed(raw), max_stream)
        try:
            with tarfile.open(fileobj=bounded, mode="r|") as tar:
                yield _Members(tar, bounded)
        except (tarfile.TarError, EOFError) as exc:
            raise _bad(f"it is not a readable tar archive ({exc})") from None


def _decompressed(raw: BinaryIO) -> _Readable:
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


class _Bounded(io.RawIOBase):
    """A decompressed stream that refuses to be read past `total` bytes, or further between two
    members than the current member's data and HEADER_ROOM."""

    def __init__(self, stream: _Readable, total: int) -> None:
        self._stream, self._total, self._left = stream, total, HEADER_ROOM
        self.consumed = 0

    def allow(self, size: int) -> None:
        self._left = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE + HEADER_ROOM

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._left <= 0 or self._total <= 0:
            raise tarfile.ReadError(
                f"a header in it takes more than {HEADER_ROOM} bytes, or its headers more than its files"
            )
        view = memoryview(buffer).cast("B")
        try:
            data = self._stream.read(min(len(view), self._left, self._total))
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:  # the compression is damaged
            raise tarfile.ReadError(f"the compressed data is damaged ({exc or 'no detail'})") from None
        view[: len(data)] = data
        self._left -= len(data)
        self._total -= len(data)
        self.consumed += len(data)
        return len(data)


def _unpack_one(members: _Members, member: tarfile.TarInfo, folder: Path) -> None:
    target = folder.joinpath(*PurePosixPath(member.name).parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL and O_NOFOLLOW: a second member of the same name never writes through the first
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out, members.open(member) as source:
        left = member.size  # never more than the header said, and the survey summed
        while left:
            block = source.read(min(_COPY, left))
            if not block:
                raise tarfile.ReadError(f"{member.name!r} is cut short")
            out.write(block)
            left -= len(block)


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    plain = member.isdir() or (member.isfile() and bool(path.parts))
    if not plain or path.is_absolute() or ".." in path.parts:
        raise _bad(
            f"it holds {member.name!r}, which is not a plain file or folder inside the dataset",
            "pack only image files and folders",
        )


def _bad(what: str, hint: str = "send a .tar (optionally gzip-compressed) of image files") -> Invalid:
    return Invalid("bad_archive", f"the archive was refused: {what}", hint)
