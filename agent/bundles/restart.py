"""After an upgrade switched `<root>/current`, the running agent restarts into the new venv.

- Under systemd (the unit runs `<root>/current/bin/kitfleet-agent run`, Restart=on-failure): the
  agent exits with EXIT_RESTART once the import has answered, and systemd starts it again from
  `current`, now the new venv.
- Under the user-level supervisor (app/provision/supervisor.py, which sets KITFLEET_SUPERVISED
  for its child and restarts a child that exits non-zero): the same.
- A plain process nobody restarts keeps running the old code; the new venv serves from its next
  start (the journal and the receipt say so). So does an import the CLI applied with no agent
  running.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["EXIT_RESTART", "after_switch", "requested", "restart_soon"]

EXIT_RESTART = 75  # EX_TEMPFAIL: a failure to service managers, so they start the agent again
_requested = threading.Event()


def supervisor() -> str | None:
    if os.environ.get("INVOCATION_ID"):  # set by systemd for every unit it starts
        return "systemd"
    if os.environ.get("KITFLEET_SUPERVISED"):
        return "supervisor"
    return None


def after_switch(running: bool) -> str:
    """Ask for a restart where one happens; says what will happen, for the journal."""
    if not running:
        return "the new agent serves from the agent's next start"
    who = supervisor()
    if who is None:
        return "not under a service manager: the new agent serves from the agent's next start"
    _requested.set()
    return f"the agent restarts into the new venv ({who} starts it again)"


def requested() -> bool:
    return _requested.is_set()


def restart_soon(delay_s: float = 1.0) -> None:
    """SIGTERM to this agent after `delay_s` (the import's answer goes out first); the server
    then exits with EXIT_RESTART (agent/server.py)."""
    if requested():
        timer = threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
