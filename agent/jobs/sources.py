"""Where a stream job reads its frames, checked at submit and again at start (like folders).

A source is a camera (`/dev/videoN`, V4L2), a network stream (`rtsp://`, `http(s)://`, see
`urls.py` for where it may point), or a video file or folder of images under one of the
kit's data roots. A file must be one video: playlists and concat lists (HLS `.m3u8`,
`ffconcat`, DASH, SDP…) are refused, since FFmpeg would open whatever files or URLs they
name. Whether a camera answers is found out by the worker, which fails the job with the
reason (a camera may be plugged in between a schedule's submit and its run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.errors import Invalid
from agent.jobs.paths import inside
from agent.jobs.urls import check_url, mask
from agent.wire import Manifest

__all__ = ["DEVICE_PATTERN", "FILE_FORMATS", "URL_SCHEMES", "playlist_kind", "stream_source"]

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
DEVICE_PATTERN = re.compile(r"^/dev/video[0-9]{1,3}$")
# Demuxers a video file may be read with: single-file containers and elementary streams, never
# hls, dash, concat, image2 (patterns), imf, sdp or the like, which open further files or URLs.
FILE_FORMATS = (
    "mov",
    "matroska",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "asf",
    "ogg",
    "h264",
    "hevc",
    "mjpeg",
    "m4v",
    "ivf",
    "obu",
    "yuv4mpegpipe",
    "nut",
    "mxf",
    "gif",
)
_PLAYLIST_SUFFIXES = {
    ".m3u8": "an HLS playlist",
    ".m3u": "a playlist",
    ".ffconcat": "an ffconcat list",
    ".concat": "a concat list",
    ".mpd": "a DASH manifest",
    ".sdp": "an SDP description",
    ".cpl": "an IMF playlist",
    ".pls": "a playlist",
    ".xspf": "a playlist",
}
_PLAYLIST_STARTS = {
    "#extm3u": "an HLS playlist",
    "ffconcat version": "an ffconcat list",
    "<?xml": "an XML manifest (DASH or IMF)",
    "<mpd": "a DASH manifest",
    "v=0": "an SDP description",
    "[playlist]": "a playlist",
}
_HINT = (
    "give /dev/videoN, an rtsp:// or http(s):// URL, or a video file or image folder under "
    "{roots} (jobs_data_roots in agent.json)"
)


def stream_source(
    source: str, roots: list[Path], manifest: Manifest, allowed_hosts: list[str], resolve: bool = True
) -> dict[str, Any]:
    """{"kind": url|device|file|folder, "location": ..., ...} for the worker, or a 422.
    `resolve` False leaves a URL's name unresolved: the worker checks it when it connects."""
    if manifest.task == "raw":
        raise Invalid(
            "model_not_visual",
            f"{manifest.name} is a raw model: a stream needs a detection or classification model",
            "choose a detector, e.g. shapes-yolo",
        )
    hint = _HINT.format(roots=", ".join(str(r) for r in roots))
    if any(ch.isspace() or ord(ch) < 32 for ch in source):
        raise Invalid("bad_source", f"{mask(source)!r} holds spaces or control characters", hint)
    if source.lower().startswith(URL_SCHEMES):
        check_url(source, allowed_hosts, resolve)
        return {"kind": "url", "location": mask(source), "allowed_hosts": list(allowed_hosts)}
    if DEVICE_PATTERN.match(source):
        return {"kind": "device", "location": source}
    if "://" in source or source.startswith("/dev/"):
        raise Invalid("bad_source", f"{mask(source)!r} is not a source a stream job can read", hint)
    return _local(source, roots, hint)


def _local(source: str, roots: list[Path], hint: str) -> dict[str, Any]:
    candidate = Path(source) if Path(source).is_absolute() else roots[0] / source
    real = candidate.resolve()
    root = next((r for r in roots if inside(real, r)), None)
    if root is None:
        raise Invalid(
            "path_outside_data_roots", f"{source!r} is outside the folders jobs may read on this kit", hint
        )
    if real.is_dir():
        return {"kind": "folder", "location": str(real), "root": str(root)}
    if real.is_file():
        playlist = playlist_kind(real)
        if playlist is not None:
            raise Invalid(
                "playlist_source",
                f"{source!r} is {playlist}: stream jobs read one "
                "video file, never a list that names other files",
                "give the video file itself, under the kit's data roots",
            )
        return {"kind": "file", "location": str(real), "root": str(root)}
    raise Invalid(
        "source_not_found",
        f"{source!r} is neither a file nor a folder on this kit",
        f"copy the video under {roots[0]} first",
    )


def playlist_kind(path: Path) -> str | None:
    """What sort of playlist or list `path` is, by name or first bytes; None for anything else
    (FFmpeg's format whitelist still refuses a list that slips by this)."""
    by_name = _PLAYLIST_SUFFIXES.get(path.suffix.lower())
    if by_name is not None:
        return by_name
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").decode("latin-1").lower()
    return next((kind for start, kind in _PLAYLIST_STARTS.items() if text.startswith(start)), None)
