"""The byte-level parts of bundles: members as verified, copying one out re-hashed, and files
that hash what passes through them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.toolkit.bundlecheck import PAYLOAD_PREFIX, check_member_path
from agent.toolkit.durable import fsync_path
from agent.toolkit.errors import BadInput, Invalid

__all__ = ["CHUNK", "HashingReader", "HashingWriter", "Member", "copy_member", "describe"]

CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    path: str
    size: int
    sha256: str
    offset: int  # where its data starts in the tar


def copy_member(handle: IO[bytes], member: Member, target: Path, sync: bool = True) -> Path:
    handle.seek(member.offset)
    digest, remaining = hashlib.sha256(), member.size
    with target.open("wb") as out:
        while remaining:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                raise BadInput("bundle_truncated", f"The bundle shrank while '{member.path}' was copied.")
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        if sync:
            os.fsync(out.fileno())
    if digest.hexdigest() != member.sha256:
        target.unlink(missing_ok=True)
        raise Invalid("member_hash_mismatch", f"'{member.path}' changed on disk after it was verified.")
    if sync:
        fsync_path(target.parent)
    return target


def describe(name: str, source: Path) -> dict[str, Any]:
    path = name if name.startswith(PAYLOAD_PREFIX) else PAYLOAD_PREFIX + name
    check_member_path(path)
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return {"path": path, "size": source.stat().st_size, "sha256": digest.hexdigest()}


class HashingReader:
    """A read-only file that hashes everything read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._digest, self.count = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingWriter:
    """A write-only file that hashes everything written through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._digest = raw, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._raw.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
