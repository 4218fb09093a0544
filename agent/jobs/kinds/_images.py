"""Read, decode and prepare images on a pool of threads, handed out in folder order.

Each image becomes one model-ready input on a decode thread, by the same steps a
request to /infer takes (decode, convert, resize, normalise), so a job's answers
match the live route's. Pillow and NumPy release the GIL for the heavy parts, so
the threads run beside each other. At most `ahead` inputs are in flight: memory
stays bounded whatever the size of the folder.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import Refusal
from agent.toolkit.images import Placement, decode_image, to_input
from agent.wire import Manifest

_UNPLACED = Placement.identity(1, 1)


@dataclass
class Item:
    path: Path
    input: np.ndarray | None  # one item of the model's input, or None when the image is unreadable
    scale: Placement = _UNPLACED  # maps boxes in input pixels back to the image's
    error: str | None = None


def prepare(path: Path, manifest: Manifest) -> Item:
    """One image as a model input; a file that cannot be read or decoded becomes an error Item.

    A bad manifest (normalisation) raises instead: that is the model's fault, not the image's.
    """
    try:
        image = decode_image(path.read_bytes(), None)
    except Refusal as exc:
        return Item(path, None, error=exc.message)
    except OSError as exc:
        return Item(path, None, error=f"cannot read the file: {exc.strerror or exc}")
    array, scale = to_input(image, manifest.input, manifest.normalisation)
    return Item(path, array, scale)


def prepared(
    paths: Sequence[Path], manifest: Manifest, workers: int, ahead: int
) -> Generator[Item, None, None]:
    """Every path's Item in order: `workers` threads decode up to `ahead` of them ahead, and the
    caller's own thread decodes too while the item it needs next is not ready, so the job's
    threads all decode when decoding is the slow part, yet never more than `workers` at once.

    Closing the iterator early (a failed job) stops the threads after the images being
    decoded at that moment, so no thread outlives it.
    """
    decoding = _Decoding(paths, manifest, max(ahead, 1), threading.Semaphore(max(workers, 1)))
    threads = [
        threading.Thread(target=decoding.work, name=f"decode-{n}", daemon=True) for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for index in range(len(paths)):
            yield decoding.take(index)
    finally:
        decoding.stop()
        for thread in threads:
            thread.join()


class _Decoding:
    """Which images are claimed, decoded and taken; the window `ahead` bounds memory."""

    def __init__(
        self, paths: Sequence[Path], manifest: Manifest, ahead: int, slots: threading.Semaphore
    ) -> None:
        self.paths, self.manifest, self.ahead, self.slots = paths, manifest, ahead, slots
        self._cond = threading.Condition()
        self._done: dict[int, Item] = {}
        self._claimed = 0  # images before this one are decoded or being decoded
        self._taken = 0  # images before this one were handed out
        self._stopped = False
        self._failed: Exception | None = None

    def _claim(self) -> int | None:
        """The next image to decode, if it is inside the window (call holding the lock)."""
        if self._stopped or self._claimed >= min(len(self.paths), self._taken + self.ahead):
            return None
        self._claimed += 1
        return self._claimed - 1

    def _decode(self, index: int) -> None:
        try:
            with self.slots:
                item = prepare(self.paths[index], self.manifest)
        except Exception as exc:  # a bad manifest: the job fails, from the thread that takes
            with self._cond:
                self._failed, self._stopped = exc, True
                self._cond.notify_all()
            return
        with self._cond:
            self._done[index] = item
            self._cond.notify_all()

    def work(self) -> None:
        while True:
            with self._cond:
                while (index := self._claim()) is None:
                    if self._stopped or self._claimed >= len(self.paths):
                        return
                    self._cond.wait()
            self._decode(index)

    def take(self, index: int) -> Item:
        while True:
            with self._cond:
                if self._failed is not None:
                    raise self._failed
                if index in self._done:
                    self._taken = index + 1
                    self._cond.notify_all()  # the window moved on
                    return self._done.pop(index)
                mine = self._claim()
                if mine is None:
                    self._cond.wait()
                    continue
            self._decode(mine)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
