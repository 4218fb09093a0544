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
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from agent.errors import Refusal
from agent.jobs.errors import JobFailed, PermanentFailure
from agent.jobs.kinds._meter import Rate
from agent.jobs.kinds._video_source import broken, open_video, video_stream
from agent.jobs.paths import images_under
from agent.jobs.urls import scrub
from agent.toolkit.images import decode_image

__all__ = ["Frame", "LatestSlot", "PulledSlot", "Reader"]

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
        self._frames: Generator[Frame, None, None] | None = None
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
        self.loops = 0  # times a looped video file started again
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

    def counted(self) -> Generator[Frame, None, None]:
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
            return JobFailed(f"decoding {self.source['location']} failed: {exc or 'no reason given'}")
        # an error from the decoder may quote the URL it opened, password and all
        return JobFailed(scrub(f"the decoder failed: {exc or 'no reason given'}", self._secret))

    def _frames(self) -> Iterator[Frame]:
        if self.source["kind"] == "folder":
            return self._folder(Path(self.source["location"]), Path(self.source["root"]))
        return self._video()

    # video: files, URLs, cameras ----------------------------------------------------

    def _video(self) -> Iterator[Frame]:
        import av

        container = open_video(self.source, self._secret)
        try:
            stream = video_stream(container, self.source["location"])
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

    def _dropped(self, frame: Frame) -> None:
        """A frame read but never taken, counted as a live source's dropped frames are."""
        self.slot.dropped += 1
        self.decoded += 1
        self.rate.tick(frame.ready)

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
                    late = False  # paced, and this packet fell due while the model ran
                    if paced and packet.size:  # as a camera sends it: each packet at its own time,
                        at = _packet_time(packet, count, rate)  # decoded when it comes, not ahead
                        first = at if first is None else first
                        due = started + (at - first)
                        if waiting is not None and due > time.monotonic():
                            yield waiting  # the model takes it while the next is not due yet
                            waiting = None
                        late = due <= time.monotonic()
                        self.stop.wait(max(0.0, due - time.monotonic()))
                    for frame in packet.decode():
                        if self.stop.is_set():
                            return
                        image = frame.to_image(threads=self._decoding_threads)  # swscale's too
                        decoded = Frame(image, time.monotonic(), index)
                        index += 1
                        if not paced:
                            yield decoded
                            continue
                        if waiting is not None and late:  # a newer frame came meanwhile: it wins
                            self._dropped(waiting)
                        elif waiting is not None:  # more than one frame from one packet (the end)
                            yield waiting
                        waiting = decoded
                if waiting is not None:
                    yield waiting
            except (av.error.FFmpegError, OSError) as exc:
                raise broken(self.source, exc, index) from None
            if index == 0:
                raise PermanentFailure(f"{self.source['location']} holds no video frame FFmpeg can decode")
            if not (self.loop and self.source["kind"] == "file"):
                return
            container.seek(0)
            self.loops += 1

    # a watched folder ---------------------------------------------------------------

    def _folder(self, folder: Path, root: Path) -> Iterator[Frame]:
        """Images in the order they were written, old ones first, then each new one as it comes.

        A file is new when its name, or its modification time or size, was not seen before: not
        when it is newer than the last one read, which would miss a file whose time is not
        later (the same clock tick, a clock set back, a copy that kept an old time)."""
        seen: dict[str, tuple[int, int]] = {}
        index = 0
        self.opened.set()
        while not self.stop.is_set():
            if not folder.is_dir():
                raise JobFailed(f"the watched folder {folder} is gone")
            listing = dict(_signed(images_under(folder, root)))
            fresh = sorted((sign[0], name) for name, sign in listing.items() if seen.get(name) != sign)
            for gone in seen.keys() - listing.keys():
                del seen[gone]
            for _, name in fresh:
                seen[name] = listing[name]
                image = self._read(Path(name))
                if image is not None:
                    yield Frame(image, time.monotonic(), index, Path(name).name)
                    index += 1
            if not fresh:
                self.stop.wait(FOLDER_POLL_S)

    def _read(self, path: Path) -> Image.Image | None:
        """The image, or None if it does not decode (yet: a file still being written is tried
        again when its writer finishes, since that changes its size or modification time)."""
        try:
            return decode_image(path.read_bytes(), None)
        except (Refusal, OSError):
            self.unreadable += 1
            return None


def _signed(paths: list[Path]) -> Iterator[tuple[str, tuple[int, int]]]:
    """(path, (modification time, size)) of each file still there."""
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # removed between the listing and now
            continue
        yield str(path), (stat.st_mtime_ns, stat.st_size)


def _packet_time(packet: Any, count: int, rate: float) -> float:
    """Seconds into the stream at which a packet is due: its decode time stamp, else its
    presentation one, else its place at the stream's frame rate."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    if stamp is None or packet.time_base is None:
        return count / rate
    return float(stamp * packet.time_base)
