"""Repeated refusals from one client, counted in one audit entry instead of written one by one.

Anyone on the kit's network can call the pairing route, and any token holder can call a route
it may not use, as often as it likes. Each refusal is worth recording once; thousands of the
same are worth a count. Per client address and window: the first refusal of each kind (action
and outcome) is written in full, the rest are counted, and when the window closes one
`audit.refusals` entry says how many of each there were. Past `max_clients` addresses in a
window, further addresses share one window, so neither memory nor entries grow with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["OTHERS", "RefusalTally", "Window"]

OTHERS = "other addresses"


@dataclass
class Window:
    """One client's refusals since `opened`: the kinds written in full, and those counted."""

    client: str
    opened: float
    last: float
    written: set[str] = field(default_factory=set)
    counted: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """`kit.adopt 403 no_pairing_code x1200; ...`, the most frequent first."""
        return "; ".join(f"{kind} x{n}" for kind, n in self.counted.most_common())


class RefusalTally:
    def __init__(self, window_s: float, max_clients: int = 256, kinds_written: int = 4) -> None:
        self.window_s = window_s
        self.max_clients = max_clients
        self.kinds_written = kinds_written
        self._windows: dict[str, Window] = {}

    def admit(self, client: str, kind: str, now: float) -> bool:
        """True: write this refusal in full; False: it is counted in its window's entry.
        Close due windows (`closed`) first, or a late refusal lands in an old window."""
        window = self._windows.get(client)
        if window is None and len(self._windows) >= self.max_clients:
            client, window = OTHERS, self._windows.get(OTHERS)
        if window is None:
            window = self._windows[client] = Window(client, now, now)
        window.last = now
        if kind not in window.written and len(window.written) < self.kinds_written:
            window.written.add(kind)
            return True
        window.counted[kind] += 1
        return False

    def closed(self, now: float) -> list[Window]:
        """Windows that ended by `now` with something counted, taken out of the tally."""
        done = [w for w in self._windows.values() if now - w.opened >= self.window_s]
        for window in done:
            del self._windows[window.client]
        return [w for w in done if w.counted]

    def drain(self) -> list[Window]:
        """Every window with something counted, ended or not (the agent is stopping)."""
        done, self._windows = list(self._windows.values()), {}
        return [w for w in done if w.counted]

    def next_close(self) -> float | None:
        """When the oldest open window ends, or None when none is open."""
        if not self._windows:
            return None
        return min(w.opened for w in self._windows.values()) + self.window_s
