"""Disk facts: the kit's real filesystems and the space left where the agent keeps models."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from agent.wire import DataDir, DisksFacts, Filesystem

# Read-only images (snaps) that would flood the list without saying anything about free space.
_SKIPPED_FSTYPES = frozenset({"squashfs"})


def collect(data_dir: Path | None = None) -> DisksFacts:
    """Return mounted filesystems with their space, plus the space of `data_dir` when given."""
    data = _data_dir(data_dir) if data_dir is not None else None
    keep = {"/", data.mountpoint or "/"} if data is not None else {"/"}
    return DisksFacts(
        available=True,
        filesystems=[_describe(mount, *found) for mount, found in _partitions(keep).items()],
        data_dir=data,
    )


def _partitions(keep: set[str]) -> dict[str, tuple[str, str]]:
    """Map mountpoint to (device, fstype) for block-device filesystems and the mounts in `keep`."""
    real = {part.mountpoint for part in psutil.disk_partitions(all=False)}
    found: dict[str, tuple[str, str]] = {}
    for part in psutil.disk_partitions(all=True):
        wanted = part.mountpoint in real and part.fstype not in _SKIPPED_FSTYPES
        # Containers bind-mount single files (/etc/hosts) from the host disk; skip those.
        if part.mountpoint in keep or (wanted and os.path.isdir(part.mountpoint)):
            # A later mount at the same place hides the earlier one, as the kernel does.
            found[part.mountpoint] = (part.device, part.fstype)
    return dict(sorted(found.items()))


def _describe(mountpoint: str, device: str, fstype: str) -> Filesystem:
    total, free = _space(Path(mountpoint))
    return Filesystem(device=device, mountpoint=mountpoint, fstype=fstype, total_bytes=total, free_bytes=free)


def _data_dir(data_dir: Path) -> DataDir:
    existing = _existing(data_dir)
    total, free = _space(existing)
    return DataDir(
        path=str(data_dir), mountpoint=str(_mount_of(existing)), total_bytes=total, free_bytes=free
    )


def _space(path: Path) -> tuple[int | None, int | None]:
    """Total and free bytes (free as an unprivileged process sees it), or Nones if unreadable."""
    try:
        usage = psutil.disk_usage(str(path))
    except OSError:
        return None, None
    return usage.total, usage.free


def _existing(path: Path) -> Path:
    """The nearest existing ancestor: the data dir may not be created yet."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_of(path: Path) -> Path:
    with contextlib.suppress(OSError, RuntimeError):  # a symlink loop: keep the path as given
        path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path
