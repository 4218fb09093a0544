"""Signed bundles: one uncompressed POSIX tar that carries work to a kit, or results back.

Layout, in this order: `manifest.json`, `manifest.sig`, then payload members under `files/`.
The manifest lists every payload member's path, size and SHA-256; the signature covers the exact
manifest bytes. Reading is one sequential pass: signature first (so nothing unsigned is parsed
further), then every payload member is hashed as it streams by. Nothing is extracted until the
whole file has been checked, and extraction hashes again so a file swapped in between is caught.

Who signs and who is trusted is the caller's business (`sign` and `verify` callables, see
`agent/toolkit/bundlesign.py`); so are targets, expiry and sequence policy (helpers below).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.toolkit.bundlecheck import FORMAT, KINDS, check_manifest, check_member_path
from agent.toolkit.bundleio import CHUNK, HashingReader, HashingWriter, Member, copy_member, describe
from agent.toolkit.durable import replace_durably
from agent.toolkit.errors import BadInput, Forbidden, Invalid, TooLarge

__all__ = [
    "FORMAT",
    "KINDS",
    "MANIFEST",
    "SIGNATURE",
    "BundleLimits",
    "Signer",
    "VerifiedBundle",
    "Verifier",
    "open_bundle",
    "write_bundle",
]

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"

Signer = Callable[[bytes], bytes]
"""Signs the manifest bytes, returns the signature."""
Verifier = Callable[[bytes, bytes], bool]
"""(manifest bytes, signature) -> trusted? May raise Forbidden with a sharper message."""


@dataclass(frozen=True)
class BundleLimits:
    max_total_bytes: int = 64 << 30
    max_member_bytes: int = 16 << 30
    max_members: int = 20_000
    max_manifest_bytes: int = 4 << 20
    max_signature_bytes: int = 4096


@dataclass
class VerifiedBundle:
    """A bundle whose signature, member list and every member's bytes have been checked."""

    path: Path
    manifest: dict[str, Any]
    manifest_bytes: bytes
    sha256: str  # of the whole file: the bundle's identity for receipts and replay records
    members: list[Member] = field(default_factory=list)
    _index: dict[str, Member] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def sequence(self) -> int:
        return int(self.manifest["sequence"])

    def member_paths(self) -> list[str]:
        return [m.path for m in self.members]

    def member(self, path: str) -> Member:
        if len(self._index) != len(self.members):
            self._index = {m.path: m for m in self.members}
        found = self._index.get(path)
        if found is None:
            raise Invalid("member_not_found", f"The bundle holds no member '{path[:120]}'.")
        return found

    def extract_member(self, path: str, target: Path, sync: bool = True) -> Path:
        """Copy one payload member to the file `target`, re-hashed; fsynced with its folder
        unless `sync` is False (a caller writing many files syncs them at once)."""
        with self.path.open("rb") as handle:
            return copy_member(handle, self.member(path), target, sync)

    def extract_members(self, targets: list[tuple[str, Path]], sync: bool = True) -> None:
        """`extract_member` for many members, reading the bundle through one open file."""
        with self.path.open("rb") as handle:
            for path, target in targets:
                copy_member(handle, self.member(path), target, sync)

    def extract_to(self, folder: Path, only: Iterator[str] | list[str] | None = None) -> list[Path]:
        """Copy payload members (all, or the paths in `only`) under `folder`, re-hashing each.

        Paths keep their `files/...` names below `folder`; each file is fsynced.
        """
        wanted = set(only) if only is not None else None
        written: list[Path] = []
        with self.path.open("rb") as handle:
            for member in self.members:
                if wanted is None or member.path in wanted:
                    written.append(_extract_one(handle, member, folder))
        return written


def write_bundle(out: Path, manifest: Mapping[str, Any], files: list[tuple[str, Path]], sign: Signer) -> str:
    """Write a bundle to `out` durably; returns the bundle's SHA-256.

    `files` are (member path under `files/`, source file). `manifest` gets `format` and `members`
    filled in; the rest (kind, signer, targets, sequence, expiry, actions) is the caller's.
    """
    members = [describe(name, source) for name, source in files]
    body = dict(manifest, format=FORMAT, members=[dict(m) for m in members])
    body.setdefault("created_at", time.time())
    limits = BundleLimits()
    check_manifest(body, limits.max_members, limits.max_member_bytes)
    manifest_bytes = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signature = sign(manifest_bytes)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            digest = HashingWriter(raw)
            with tarfile.open(fileobj=digest, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                _add_bytes(tar, MANIFEST, manifest_bytes)
                _add_bytes(tar, SIGNATURE, signature)
                for (_name, source), meta in zip(files, members, strict=True):
                    _add_file(tar, meta, source)
            raw.flush()
            os.fsync(raw.fileno())
        replace_durably(Path(tmp), out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def open_bundle(path: Path, verify: Verifier, limits: BundleLimits | None = None) -> VerifiedBundle:
    """Check a bundle completely; raises a Refusal saying what is wrong, or returns it verified."""
    limits = limits or BundleLimits()
    size = path.stat().st_size
    if size > limits.max_total_bytes:
        raise TooLarge(
            "bundle_too_large",
            f"{path.name} is {size} bytes; bundles may be at most {limits.max_total_bytes}.",
            "Split the work into several bundles.",
        )
    with path.open("rb") as raw:
        reader = HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                return _read(tar, reader, path, verify, limits)
        except tarfile.TarError as exc:
            raise _truncated(path, exc) from exc
        except EOFError as exc:
            raise _truncated(path, exc) from exc


# --- reading ---------------------------------------------------------------------------------


def _read(
    tar: tarfile.TarFile, reader: HashingReader, path: Path, verify: Verifier, limits: BundleLimits
) -> VerifiedBundle:
    manifest_bytes = _small_member(tar, MANIFEST, limits.max_manifest_bytes)
    signature = _small_member(tar, SIGNATURE, limits.max_signature_bytes)
    if not verify(manifest_bytes, signature):
        raise Forbidden(
            "bad_signature",
            "The bundle's signature does not match its manifest (altered or not signed by this key).",
            "Get the bundle again from the laptop that made it.",
        )
    manifest = _parse_manifest(manifest_bytes, limits)
    bundle = VerifiedBundle(path, manifest, manifest_bytes, "")
    for expected in manifest["members"]:
        bundle.members.append(_check_payload(tar, expected))
    extra = tar.next()
    if extra is not None and not extra.isreg():
        shown = _show(extra.name)
        raise Invalid(
            "bad_member_type", f"Bundle member '{shown}' is not a regular file (links are refused)."
        )
    if extra is not None:
        raise Invalid(
            "unlisted_member", f"The bundle holds '{_show(extra.name)}', which its manifest does not list."
        )
    reader.drain()
    _check_end_marker(tar, reader.count)
    bundle.sha256 = reader.hexdigest()
    return bundle


def _check_end_marker(tar: tarfile.TarFile, total: int) -> None:
    """A whole tar ends with two zero blocks after its last member; a cut copy lacks them."""
    if total < tar.offset + 2 * tarfile.BLOCKSIZE:
        raise BadInput("bundle_truncated", "The bundle's end-of-archive marker is missing.", _TRUNC_HINT)


def _next(tar: tarfile.TarFile, expected: str) -> tarfile.TarInfo:
    member = tar.next()
    if member is None:
        raise BadInput("bundle_truncated", f"The bundle ends before its member '{expected}'.", _TRUNC_HINT)
    if not member.isreg():
        raise Invalid(
            "bad_member_type",
            f"Bundle member '{_show(member.name)}' is not a regular file (links and devices are refused).",
        )
    return member


def _small_member(tar: tarfile.TarFile, name: str, cap: int) -> bytes:
    member = _next(tar, name)
    if member.name != name:
        raise Invalid(
            "bad_member_order", f"The bundle's member '{_show(member.name)}' is where '{name}' must be."
        )
    if member.size > cap:
        raise TooLarge("member_too_large", f"The bundle's {name} is {member.size} bytes (at most {cap}).")
    data = _read_exact(tar, member)
    return data


def _check_payload(tar: tarfile.TarFile, expected: Mapping[str, Any]) -> Member:
    member = _next(tar, expected["path"])
    check_member_path(member.name)
    if member.name != expected["path"]:
        raise Invalid(
            "bad_member_order",
            f"The bundle holds '{_show(member.name)}' where its manifest lists '{expected['path']}'.",
        )
    if member.size != expected["size"]:
        raise Invalid(
            "member_size_mismatch",
            f"'{member.name}' is {member.size} bytes; the manifest says {expected['size']}.",
            _TRUNC_HINT,
        )
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file always has data
    digest, remaining = hashlib.sha256(), member.size
    while remaining:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            raise BadInput("bundle_truncated", f"The bundle ends inside '{member.name}'.", _TRUNC_HINT)
        digest.update(chunk)
        remaining -= len(chunk)
    if digest.hexdigest() != expected["sha256"]:
        raise Invalid(
            "member_hash_mismatch",
            f"'{member.name}' does not match its SHA-256 in the manifest: the bundle was altered or damaged.",
            _TRUNC_HINT,
        )
    return Member(member.name, member.size, expected["sha256"], member.offset_data)


def _read_exact(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    data = handle.read(member.size)
    if len(data) != member.size:
        raise BadInput("bundle_truncated", f"The bundle ends inside '{member.name}'.", _TRUNC_HINT)
    return data


def _parse_manifest(data: bytes, limits: BundleLimits) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput("bad_manifest", f"The bundle's manifest is not JSON: {exc}.") from exc
    check_manifest(body, limits.max_members, limits.max_member_bytes)
    return body  # type: ignore[no-any-return]


def _extract_one(handle: IO[bytes], member: Member, folder: Path) -> Path:
    target = folder / member.path
    target.parent.mkdir(parents=True, exist_ok=True)
    return copy_member(handle, member, target)


_TRUNC_HINT = "Copy the bundle again (the copy may be incomplete or damaged)."


def _truncated(path: Path, exc: BaseException) -> BadInput:
    return BadInput("bundle_truncated", f"{path.name} is not a complete bundle ({exc}).", _TRUNC_HINT)


def _show(name: str) -> str:
    return name[:120].encode("unicode_escape").decode()


# --- writing ---------------------------------------------------------------------------------


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, int(time.time()), tarfile.REGTYPE
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, meta: Mapping[str, Any], source: Path) -> None:
    with source.open("rb") as handle:
        checked = HashingReader(handle)
        tar.addfile(_info(meta["path"], meta["size"]), checked)
    if checked.hexdigest() != meta["sha256"]:
        raise Invalid("source_changed", f"{source} changed while the bundle was written.", "Try again.")
