"""Where a stream job reads its frames, checked at submit and again at start (like folders).

A source is a camera (`/dev/videoN`, V4L2), a network stream (`rtsp://`, `http(s)://`), or a
video file or folder of images under one of the kit's data roots. Only shape and place are
checked here: whether a camera answers is found out by the worker, which fails the job
with the reason (a camera may be plugged in between a schedule's submit and its run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.api.schemas import Manifest
from agent.errors import ApiError
from agent.jobs.paths import inside

__all__ = ["DEVICE_PATTERN", "URL_SCHEMES", "stream_source"]

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
DEVICE_PATTERN = re.compile(r"^/dev/video[0-9]{1,3}$")
_HINT = ("give /dev/videoN, an rtsp:// or http(s):// URL, or a video file or image folder under "
         "{roots} (jobs_data_roots in agent.json)")


def stream_source(source: str, roots: list[Path], manifest: Manifest) -> dict[str, Any]:
    """{"kind": url|device|file|folder, "location": ..., "root": ...} for the worker, or a 422."""
    if manifest.task == "raw":
        raise ApiError(422, "model_not_visual", f"{manifest.name} is a raw model: a stream needs "
                       "a detection or classification model", "choose a detector, e.g. shapes-yolo")
    hint = _HINT.format(roots=", ".join(str(r) for r in roots))
    if any(ch.isspace() or ord(ch) < 32 for ch in source):
        raise ApiError(422, "bad_source", f"{source!r} holds spaces or control characters", hint)
    if source.lower().startswith(URL_SCHEMES):
        return {"kind": "url", "location": source}
    if DEVICE_PATTERN.match(source):
        return {"kind": "device", "location": source}
    if "://" in source or source.startswith("/dev/"):
        raise ApiError(422, "bad_source", f"{source!r} is not a source a stream job can read", hint)
    return _local(source, roots, hint)


def _local(source: str, roots: list[Path], hint: str) -> dict[str, Any]:
    candidate = Path(source) if Path(source).is_absolute() else roots[0] / source
    real = candidate.resolve()
    root = next((r for r in roots if inside(real, r)), None)
    if root is None:
        raise ApiError(422, "path_outside_data_roots",
                       f"{source!r} is outside the folders jobs may read on this kit", hint)
    if real.is_dir():
        return {"kind": "folder", "location": str(real), "root": str(root)}
    if real.is_file():
        return {"kind": "file", "location": str(real), "root": str(root)}
    raise ApiError(422, "source_not_found", f"{source!r} is neither a file nor a folder on this kit",
                   f"copy the video under {roots[0]} first")
