"""A deploy's progress on a terminal: one line per kit, updated in place; plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from app.cli.common import say

if TYPE_CHECKING:
    from app.fleet.deploy import Progress

__all__ = ["ProgressLine"]


class ProgressLine:
    """One line per kit on a terminal, updated in place; plain lines otherwise."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(self, p: Progress) -> None:
        pct = 100 * p.sent // p.total if p.total else 100
        text = f"{p.kit}: {p.stage} {pct}%" + (f" ({p.message})" if p.message else "")
        if self._last.get(p.kit) == text or (p.stage == "uploading" and pct % 10 and pct != 100):
            return
        self._last[p.kit] = text
        say(text, file=sys.stderr)
