"""Text that came from a kit, made safe to show: on a terminal, in a log line, in a report.

Kits, their announcements and the people who name jobs choose these strings; none of them may
steer the technician's terminal (ANSI escapes, carriage returns) or reorder what is read (bidi
overrides). `printable` escapes those characters and keeps every other one as it is; the
definition is the wire contract's, so the agent's refusals and the app's escapes agree.
"""

from __future__ import annotations

from agent.wire import CONTROL_CHARACTERS, printable

__all__ = ["CONTROL_CHARACTERS", "printable", "printable_lines"]


def printable_lines(text: str) -> str:
    """Multi-line text (a job's log, an error): escaped but for its line breaks and tabs."""
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n"))
