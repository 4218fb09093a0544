"""A stream job's live view: two files in its job folder, replaced whole a few times a second.

The worker writes `live.json` (stats and the latest frames' results) and `live.jpg` (the
latest annotated frame) through a temporary and a rename, so a reader always sees a whole
file; the API reads them for `/live` and `/snapshot`. A slow reader never holds the worker
back: it reads the latest and misses what it was too slow for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["LIVE_JPEG", "LIVE_JSON", "SNAPSHOTS", "publish", "read_jpeg", "read_live"]

LIVE_JSON, LIVE_JPEG = "live.json", "live.jpg"
SNAPSHOTS = "snapshots"  # under results/: annotated frames with detections, the newest kept


def publish(folder: Path, name: str, data: bytes) -> None:
    """Replace `folder/name` atomically (no fsync: a live view is worth nothing after a crash)."""
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(data)
    os.replace(temporary, folder / name)


def read_live(folder: Path) -> dict[str, Any] | None:
    """The latest live document, or None before the worker wrote one."""
    try:
        data = json.loads((folder / LIVE_JSON).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jpeg(folder: Path) -> bytes | None:
    try:
        return (folder / LIVE_JPEG).read_bytes()
    except OSError:
        return None
