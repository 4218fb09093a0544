"""A job's thread limit as one budget that its decoding and its model draw from together.

Decoding an image takes one thread of the budget; a model run takes all of it (its ONNX
Runtime session has as many intra-op threads as the job holds). A model run that asks
waits only for the decodes under way to finish, and no new decode starts before it, so
at no moment do more threads of the job run than it was admitted with: on a kit doing other
work, the job's threads no longer crowd each other off the cores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Budget"]


class Budget:
    def __init__(self, threads: int) -> None:
        self.threads = max(threads, 1)
        self._cond = threading.Condition()
        self._busy = 0  # decodes running
        self._model = False  # a model run is under way
        self._model_waiting = 0

    @contextmanager
    def one(self) -> Iterator[None]:
        """One thread's share, for a decode."""
        with self._cond:
            while self._model or self._model_waiting or self._busy >= self.threads:
                self._cond.wait()
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextmanager
    def whole(self) -> Iterator[None]:
        """All of it, for a model run; it goes before decodes that have not started."""
        with self._cond:
            self._model_waiting += 1
            while self._model or self._busy:
                self._cond.wait()
            self._model_waiting -= 1
            self._model = True
        try:
            yield
        finally:
            with self._cond:
                self._model = False
                self._cond.notify_all()
