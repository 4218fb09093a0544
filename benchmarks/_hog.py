"""Other work on the kit: a busy-looping process on one core while a measurement runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

HOG = "while True:\n    pass\n"


@contextlib.contextmanager
def hog_on_one_core(on: bool = True, pinned: bool = True) -> Iterator[str]:
    """A busy-loop subprocess (pinned to the last core, or left to float) while the block runs;
    yields words naming the condition, for the printed figures."""
    if not on:
        yield "quiet"
        return
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    where = "floating"
    try:
        if pinned:
            with contextlib.suppress(AttributeError, OSError):  # no affinity outside Linux
                os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
                where = "pinned to one core"
        yield f"CPU hog {where}"
    finally:
        hog.kill()
        hog.wait()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"
