"""Whether a process the tests started or watch still runs."""

from __future__ import annotations

import psutil

__all__ = ["alive"]


def alive(process: int | psutil.Process) -> bool:
    """True while the process runs: a zombie has died (only its parent's wait remains), and a
    process whose PID was reused since it was looked up (`is_running`) is not the same one."""
    try:
        if isinstance(process, int):
            process = psutil.Process(process)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
