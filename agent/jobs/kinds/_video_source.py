"""Opening a stream job's video source with FFmpeg, and the words for when it fails.

A URL is checked and pinned to the checked address as it connects; a file is read through
the file protocol and single-file demuxers only; a camera is opened with V4L2. Failures
name the source and what a technician can check, and say whether a retry may help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.errors import Refusal
from agent.jobs.errors import JobFailed, PermanentFailure
from agent.jobs.sources import FILE_FORMATS, playlist_kind
from agent.jobs.urls import check_url, ffmpeg_options

__all__ = ["broken", "open_video", "video_stream"]

OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 10.0


def open_video(source: dict[str, Any], secret: str | None = None) -> Any:
    import av

    location, options = _opening(source, secret)
    try:
        return av.open(
            location,
            format="v4l2" if source["kind"] == "device" else None,
            options=options,
            timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S),
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise PermanentFailure(_cannot_open(source, exc)) from None


def _opening(source: dict[str, Any], secret: str | None) -> tuple[str, dict[str, str]]:
    """What FFmpeg opens, and the options that hold it to that: a URL is resolved, checked and
    pinned to the checked address now, as it connects; a file is one video file, read through
    the file protocol only."""
    location, kind = source["location"], source["kind"]
    if kind == "url":
        try:
            target = check_url(secret or location, source.get("allowed_hosts", []))
        except Refusal as exc:
            raise PermanentFailure(exc.message) from None
        return target.url, ffmpeg_options(target)
    if kind == "file":
        playlist = playlist_kind(Path(location))
        if playlist is not None:
            raise PermanentFailure(
                f"{Path(location).name} is {playlist}: stream jobs read one video "
                "file, never a list that names other files"
            )
        return location, {"protocol_whitelist": "file", "format_whitelist": ",".join(FILE_FORMATS)}
    return location, {}


def video_stream(container: Any, location: str) -> Any:
    if not container.streams.video:
        raise PermanentFailure(f"{location} has no video stream")
    return container.streams.video[0]


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _cannot_open(source: dict[str, Any], exc: BaseException) -> str:
    location, kind, reason = source["location"], source["kind"], _reason(exc)
    if kind == "device":
        if isinstance(exc, FileNotFoundError):
            return f"no camera at {location}: check it is plugged in (ls /dev/video*)"
        if isinstance(exc, PermissionError):
            return f"the agent may not read {location}: add its user to the video group"
        return f"the camera at {location} did not open ({reason})"
    if kind == "url":  # one answer for every failure: the kit is not a port scanner
        return (
            f"cannot read the stream at {_host(location)}: no video came from it; check the "
            "address, the user and password, and that the camera is on and reachable from the kit"
        )
    return (
        f"{Path(location).name} is not a video FFmpeg can read ({reason}); check it plays in a "
        "video player (playlists and lists of files are not read)"
    )


def broken(source: dict[str, Any], exc: BaseException, frames: int) -> Exception:
    """A source that broke off after `frames` frames: a retry may help a live one, not a file."""
    if source["kind"] == "url":
        return JobFailed(f"the stream at {_host(source['location'])} broke off after {frames} frame(s)")
    message = f"{source['location']} broke off after {frames} frame(s): {_reason(exc)}"
    if source["kind"] == "file":  # the same bytes would break the same way again
        return PermanentFailure(message)
    return JobFailed(message)


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "the source"
    except ValueError:
        return "the source"
