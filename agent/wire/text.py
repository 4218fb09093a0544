"""Names and labels that reach a terminal, a log or a report: control characters refused or escaped."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["CONTROL_CHARACTERS", "PlainText", "printable"]


# Characters that steer a terminal or reorder what a reader sees: C0 and C1 controls (ESC starts
# ANSI sequences, CR overwrites a line), DEL, and the bidi marks, embeddings, overrides and
# isolates (U+202E shows `gpj.exe` as `exe.jpg`). Ordinary Unicode is left alone.
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` safe to show on a terminal, in a log line or a report: every control character
    (CONTROL_CHARACTERS) written as its escape (`\\x1b`, `\\r`, `\\u202e`), the rest unchanged."""
    return CONTROL_CHARACTERS.sub(_escaped, text)


def _no_controls(value: str) -> str:
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(
            f"must not contain control characters (found {_escaped(found)} at "
            f"position {found.start()}): use plain text"
        )
    return value


# A name or label a person gave and others will read: no control characters.
PlainText = Annotated[str, AfterValidator(_no_controls)]
