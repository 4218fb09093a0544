"""Rates and latency percentiles over a sliding window, in bounded memory."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

__all__ = ["Latencies", "Rate"]


class Rate:
    """Events per second over the last `window_s` (at most `size` events remembered).

    One thread ticks while another reads, hence the lock.
    """

    def __init__(self, window_s: float = 2.0, size: int = 1024) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if now is None else now)

    def per_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = now - self._times[0]
            return round((len(self._times) - 1) / span, 2) if span > 0 else 0.0


class Latencies:
    """The last `size` latencies in milliseconds, and their p50/p99."""

    def __init__(self, size: int = 1000) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._values.append(ms)

    def percentiles(self) -> dict[str, float | None]:
        if not self._values:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(np.fromiter(self._values, float), [50, 99])
        return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}
