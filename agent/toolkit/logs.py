"""Log lines that text from the network cannot steer: one record, one line, controls escaped."""

from __future__ import annotations

import logging
from typing import Any

from agent.wire import printable

__all__ = ["PrintableFormatter"]


class PrintableFormatter(logging.Formatter):
    """Escapes control characters in the formatted message (a schedule's name, a path someone
    sent, a kit's error), so no log line can steer a terminal or pass for another line; a
    traceback after it keeps its line breaks, escaped otherwise too."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return "\n".join(printable(line) for line in super().formatException(ei).split("\n"))
