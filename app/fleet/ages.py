"""How long ago something happened, in the words the CLI and the window both show ("3 min ago")."""

from __future__ import annotations

import time

__all__ = ["age_text"]


def age_text(ts: float | None, now: float | None = None) -> str:
    """'3 min ago' style age of an epoch time; 'never' when there is none."""
    if not ts:
        return "never"
    seconds = max(0.0, (now or time.time()) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"  # whole units passed, as clocks read
    return f"{int(seconds)} s ago"
