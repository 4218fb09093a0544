"""The field report's markup helpers, shared by its sections: escaping, times, tables, numbers."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence

from app.fleet.text import printable

__all__ = ["e", "num", "table", "when"]


def e(value: object) -> str:
    """Text for the page: HTML-escaped, and with a kit's control characters (a bidi override
    that reverses what a reader sees, an escape) shown as escapes."""
    return html.escape(printable("" if value is None else str(value)))


def when(ts: float | None, never: str = "never") -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else never


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "none") -> str:
    """Cells are HTML already (escaped by the caller); numbers are marked with a leading \\x00."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    lines = [
        "<tr>"
        + "".join(f'<td class="num">{c[1:]}</td>' if c.startswith("\0") else f"<td>{c}</td>" for c in row)
        + "</tr>"
        for row in rows
    ]
    if not lines:
        return f'<p class="muted">{e(empty)}</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def num(value: float | None, fmt: str = "{:.0f}", suffix: str = "") -> str:
    return "\0" + ("" if value is None else e(fmt.format(value) + suffix))
