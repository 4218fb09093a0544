"""Frames from a stream job's source: a live one decoded on a thread into a one-frame slot,
a video file decoded on the job's own thread as the model asks for frames.

The decode thread never waits for the model on a live source: a newer frame replaces the
one waiting, which is counted as dropped, so memory holds at most one decoded frame however
slow inference is. A file sets its own pace, so it needs no thread: decoding and the model
take turns on the job's threads (no hand-over between threads, no decoder competing with
the model for a core), and played at camera pace, frames that fell due while the model ran
are decoded and dropped but the newest. PyAV (FFmpeg) decodes files, URLs and V4L2 cameras,
with as many threads as the job holds (never FFmpeg's default of every core); Pillow reads
a watched folder's images. PyAV is imported only here, in the worker process.

Whatever breaks in decoding fails the job with what broke, never ends it early as done.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from agent.errors import Refusal
from agent.jobs.errors import JobFailed, PermanentFailure
from agent.jobs.kinds._meter import Rate
from agent.jobs.paths import images_under
from agent.jobs.sources import FILE_FORMATS, playlist_kind
from agent.jobs.urls import check_url, ffmpeg_options, scrub
from agent.toolkit.images import decode_image

__all__ = ["Frame", "LatestSlot", "PulledSlot", "Reader"]

OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 10.0
FOLDER_POLL_S = 0.1


@dataclass
class Frame:
    image: Image.Image
    ready: float  # time.monotonic() when the decoded frame was ready: latency starts here
    index: int  # frame number in the source (images read, for a folder)
    name: str | None = None  # the image's file name, for a folder


class LatestSlot:
    """Holds at most one frame. `put` replaces a waiting frame (dropped) or, asked to, waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame, wait: bool) -> bool:
        """False once closed. `wait` keeps every frame (files read as fast as the model goes)."""
        with self._cond:
            while wait and self._frame is not None and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and emptied: no frame will come any more."""
        with self._cond:
            return self._closed and self._frame is None


class PulledSlot:
    """The slot's side for a source read on the job's own thread: `take` decodes the next frame."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._frames: Iterator[Frame] | None = None
        self._closed = False
        self.dropped = 0

    def take(self, timeout: float) -> Frame | None:
        if self._closed:
            return None
        if self._frames is None:
            self._frames = self.reader.counted()
        try:
            return next(self._frames)
        except StopIteration:
            self.close()
        except Exception as exc:  # every failure ends the job as failed, with its words
            self.reader.error = self.reader.failure(exc)
            self.close()
        return None

    def close(self) -> None:
        self._closed = True
        if self._frames is not None:
            self._frames.close()  # the container closes with it

    @property
    def finished(self) -> bool:
        return self._closed


class Reader(threading.Thread):
    """Decodes the source into `slot` until it ends, fails or `stop` is set: on its own thread for
    a live source or a folder, on the job's thread (through a PulledSlot) for a video file."""

    def __init__(
        self,
        source: dict[str, Any],
        realtime: bool,
        loop: bool,
        secret: str | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__(name="decode", daemon=True)
        self.source, self.realtime, self.loop = source, realtime, loop
        self.threads = max(threads, 1)
        self.pulled = source["kind"] == "file"
        self.slot: LatestSlot | PulledSlot = PulledSlot(self) if self.pulled else LatestSlot()
        self._secret = secret  # the URL with its password: opened, never shown
        self.stop = threading.Event()
        self.decoded = 0
        self.rate = Rate()  # frames read per second
        self.total: int | None = None  # frames in a file read once, when the container says
        self.unreadable = 0  # folder images that would not decode
        self.error: Exception | None = None
        self.opened = threading.Event()

    def start(self) -> None:
        if self.pulled:
            self.opened.set()  # opened by the job's thread at its first frame
        else:
            super().start()

    def join(self, timeout: float | None = None) -> None:
        if not self.pulled:
            super().join(timeout)

    def run(self) -> None:
        wait, slot = self._flat_out(), self.slot
        assert isinstance(slot, LatestSlot)
        try:
            for frame in self.counted():
                if not slot.put(frame, wait):
                    return
        except Exception as exc:  # every failure ends the job as failed, with its words
            self.error = self.failure(exc)
        finally:
            self.opened.set()
            slot.close()

    def counted(self) -> Iterator[Frame]:
        for frame in self._frames():
            self.decoded += 1
            self.rate.tick(frame.ready)
            yield frame

    def failure(self, exc: Exception) -> Exception:
        """What the job fails with: our own failures as they are, anything else (a decoder or
        library bug, a frame it cannot convert) named, so the job ends failed, not done."""
        if isinstance(exc, (PermanentFailure, JobFailed)):
            return exc
        if self._secret is None:
            traceback.print_exc()  # to the job's worker.err, for whoever fixes the bug
            return JobFailed(f"decoding {self.source['location']} failed: {type(exc).__name__}: {exc}")
        # an error from the decoder may quote the URL it opened, password and all
        return JobFailed(scrub(f"the decoder failed: {type(exc).__name__}: {exc}", self._secret))

    def _frames(self) -> Iterator[Frame]:
        if self.source["kind"] == "folder":
            return self._folder(Path(self.source["location"]), Path(self.source["root"]))
        return self._video()

    # video: files, URLs, cameras ----------------------------------------------------

    def _video(self) -> Iterator[Frame]:
        import av

        container = _open(self.source, self._secret)
        try:
            stream = _video_stream(container, self.source["location"])
            # Slice threading finishes each frame within its own decode call, so on the job's
            # thread decoding and the model take turns on the job's threads. Frame threading
            # would decode ahead beside the model's run (which then waits for a core) and hold
            # a live source back by a frame per thread. FFmpeg's default count is every core.
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = self._decoding_threads
            if self.source["kind"] == "file" and not self.loop:
                self.total = stream.frames or None
            self.opened.set()
            yield from self._decode(container, stream, av)
        finally:
            container.close()

    @property
    def _decoding_threads(self) -> int:
        """FFmpeg's threads: a file's, taking turns with the model, are all the job's; a live
        source's, decoding beside the model, half."""
        return self.threads if self.pulled else max(1, self.threads // 2)

    def _flat_out(self) -> bool:
        """True when the source is read as fast as the model takes it, every frame kept."""
        return self.source["kind"] in ("file", "folder") and not self.realtime

    def _decode(self, container: Any, stream: Any, av: Any) -> Iterator[Frame]:
        index, paced = 0, self.source["kind"] == "file" and self.realtime
        rate = float(stream.average_rate or 25)
        while not self.stop.is_set():
            started, first = time.monotonic(), None
            waiting: Frame | None = None  # paced: the newest decoded frame, until the next is due
            try:
                for count, packet in enumerate(container.demux(stream)):
                    if paced and packet.size:  # as a camera sends it: each packet at its own time,
                        at = _packet_time(packet, count, rate)  # decoded when it comes, not ahead
                        first = at if first is None else first
                        due = started + (at - first)
                        if waiting is not None and due > time.monotonic():
                            yield waiting  # the model takes it while the next is not due yet
                            waiting = None
                        self.stop.wait(max(0.0, due - time.monotonic()))
                    for frame in packet.decode():
                        if self.stop.is_set():
                            return
                        image = frame.to_image(threads=self._decoding_threads)  # swscale's too
                        decoded = Frame(image, time.monotonic(), index)
                        index += 1
                        if not paced:
                            yield decoded
                        elif waiting is not None:  # it fell due while the model ran: the newer wins
                            self.slot.dropped += 1
                        waiting = decoded if paced else None
                if waiting is not None:
                    yield waiting
            except (av.error.FFmpegError, OSError) as exc:
                raise _broken(self.source, exc, index) from None
            if index == 0:
                raise PermanentFailure(f"{self.source['location']} holds no video frame FFmpeg can decode")
            if not (self.loop and self.source["kind"] == "file"):
                return
            container.seek(0)

    # a watched folder ---------------------------------------------------------------

    def _folder(self, folder: Path, root: Path) -> Iterator[Frame]:
        """Images in the order they were written, old ones first, then each new one as it comes."""
        mark: tuple[int, str] = (0, "")
        index = 0
        self.opened.set()
        while not self.stop.is_set():
            if not folder.is_dir():
                raise JobFailed(f"the watched folder {folder} is gone")
            fresh = sorted(k for k in _keyed(images_under(folder, root)) if k > mark)
            for key in fresh:
                mark = key
                image = self._read(Path(key[1]))
                if image is not None:
                    yield Frame(image, time.monotonic(), index, Path(key[1]).name)
                    index += 1
            if not fresh:
                self.stop.wait(FOLDER_POLL_S)

    def _read(self, path: Path) -> Image.Image | None:
        """The image, or None if it does not decode (yet: a file still being written is tried
        again when its writer finishes, since that moves its modification time on)."""
        try:
            return decode_image(path.read_bytes(), None)
        except (Refusal, OSError):
            self.unreadable += 1
            return None


def _keyed(paths: list[Path]) -> Iterator[tuple[int, str]]:
    for path in paths:
        try:
            yield path.stat().st_mtime_ns, str(path)
        except OSError:  # removed between the listing and now
            continue


def _packet_time(packet: Any, count: int, rate: float) -> float:
    """Seconds into the stream at which a packet is due: its decode time stamp, else its
    presentation one, else its place at the stream's frame rate."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    if stamp is None or packet.time_base is None:
        return count / rate
    return float(stamp * packet.time_base)


def _open(source: dict[str, Any], secret: str | None = None) -> Any:
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


def _video_stream(container: Any, location: str) -> Any:
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


def _broken(source: dict[str, Any], exc: BaseException, frames: int) -> Exception:
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
