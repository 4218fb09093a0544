"""Helpers shared by the fact collectors: tolerant file reads and the "unavailable" shape."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from agent.wire import FactFamily

F = TypeVar("F", bound=FactFamily)


def read_text(path: Path | str) -> str | None:
    """Return a file's stripped text, or None when it is missing, unreadable or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, permission denied, or a sysfs attribute the driver refuses
        return None
    # Device-tree strings end with a NUL byte.
    text = text.replace("\x00", "").strip()
    return text or None


def unavailable(family: type[F], reason: str) -> F:
    """The family as reported when its source cannot be read: only `available` and `reason`."""
    return family(available=False, reason=reason)
