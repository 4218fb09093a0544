"""Children that die with the thread that started them (Linux `PR_SET_PDEATHSIG`).

The agent's job workers and model checks, and the demo's agents, get SIGTERM when the thread
that started them dies, even by SIGKILL, so none outlives its parent.
"""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGTERM when the thread that started it dies. Only a call into
    libc, loaded beforehand: nothing that could wait on a lock after fork. Only for children
    started by a thread that lives as long as their parent."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
