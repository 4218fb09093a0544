"""Read, decode and prepare images on a pool of threads, handed out in folder order.

Each image becomes one model-ready input on a decode thread, by the same steps a
request to /infer takes (decode, convert, resize, normalise), so a job's answers
match the live route's. Pillow and NumPy release the GIL for the heavy parts, so
the threads run beside each other and beside the model. At most `ahead` inputs are
in flight: memory stays bounded whatever the size of the folder.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    """Every path's Item in order, `workers` threads keeping up to `ahead` of them in flight.

    Closing the iterator early (a failed job) drops the queued work and waits only for
    the images being decoded at that moment, so no thread outlives it.
    """
    pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="decode")
    upcoming = iter(paths)
    pending: deque[Future[Item]] = deque()

    def submit(count: int) -> None:
        pending.extend(pool.submit(prepare, path, manifest) for path in itertools.islice(upcoming, count))

    try:
        submit(max(ahead, 1))
        while pending:
            item = pending.popleft().result()
            submit(1)
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
