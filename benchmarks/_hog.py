"""Other work on the kit: a busy-looping process on one core while a measurement runs; and
waiting for an agent's own work to end before the next measurement."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil

from app.fleet.localagent import LocalAgent

HOG = "while True:\n    pass\n"


@contextlib.contextmanager
def hog_on_one_core(on: bool = True, pinned: bool = True) -> Iterator[str]:
    """A busy-loop subprocess (pinned to the last core, or left to float) while the block runs;
    yields words naming the condition, for the printed figures.

    The hog runs in a session of its own, as other work on a kit does (another service, another
    login). Linux's autogroup scheduler shares a core between sessions first, then between the
    threads of each: a hog in this process's session competed with the plain loops here thread
    against thread, but with a job's worker (a session of its own) group against group, so the
    loops had an advantage no loop a technician runs would have (here the 2-thread loop ran
    ~9 % faster beside a hog in its own session than beside one in a session of its own)."""
    if not on:
        yield "quiet"
        return
    hog = subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True)
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


def once_quiet(agent: LocalAgent, figures: dict[str, float]) -> dict[str, float]:
    """`figures`, once a running `agent` has gone quiet (at once when it does not run)."""
    if agent.process is not None:
        wait_until_quiet(agent.process.pid)
    return figures


def wait_until_quiet(pid: int, timeout_s: float = 15.0) -> None:
    """Until process `pid` and its children use under 10 ms of CPU in 0.25 s: after a job an
    agent starts its next spare worker, whose imports would slow the next figure taken."""
    agent = psutil.Process(pid)

    def cpu() -> float:
        total = 0.0
        for proc in [agent, *agent.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += sum(proc.cpu_times()[:2])
        return total

    deadline, before = time.monotonic() + timeout_s, cpu()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if (now := cpu()) - before < 0.01:
            return
        before = now
