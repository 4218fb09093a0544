"""`kitfleet discover` at a terminal (issue 20 item 5): it used to sit silent for its whole
timeout. A kit shows as soon as it answers, while a spinner says discovery goes on; a pipe gets
the lines without the spinner. Real mDNS, on 127.0.0.1 only."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet

# a frame of the spinner: clear the line, a turning bar, what it does
FRAME = re.compile(r"\r\x1b\[2K[|/\-\\] listening for kits")


def _at_a_terminal(home: Path, *args: str) -> str:
    """The real CLI with a pseudo-terminal as stdout and stderr: all it wrote, in order."""
    leader, follower = pty.openpty()
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    command = [sys.executable, "-m", "app", "--home", str(home), "--interface", "127.0.0.1", *args]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    said = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    said += os.read(leader, 4096)
                except OSError:  # the process closed the terminal
                    break
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=30) == 0, said
    finally:
        proc.kill()
        os.close(leader)
    return said.decode(errors="replace").replace("\r\n", "\n")


def _shown(said: str) -> list[str]:
    """The lines as the terminal shows them: a line's text after its last carriage return, the
    clear-line escape dropped (the table's first line follows the last spinner frame's clearing)."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[2K", "") for line in said.split("\n")]


def test_discover_shows_kits_as_they_answer_with_a_spinner_on_a_terminal(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("spun-kit")  # announces on 127.0.0.1
    said = _at_a_terminal(tmp_path / "home", "discover", "--timeout", "4")

    found = f"found spun-kit at {agent.address}"
    assert found in said, said
    before, after = said.split(found, 1)
    assert FRAME.search(before), "the spinner turns while it listens"
    assert FRAME.search(after.split("spun-kit", 1)[0]), "listening went on after the kit was shown"
    table = next(line for line in _shown(after) if line.startswith("spun-kit "))
    assert "unadopted" in table, "then the table of every kit, with its status"


def test_discover_into_a_pipe_prints_lines_without_a_spinner(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("piped-kit")
    done = kitfleet(tmp_path / "home", "--interface", "127.0.0.1", "discover", "--timeout", "2")

    assert done.returncode == 0, done.stderr
    assert f"found piped-kit at {agent.address}" in done.stderr, done.stderr
    assert "\r" not in done.stderr + done.stdout, "no carriage returns in a log"
    assert any(line.startswith("piped-kit ") for line in done.stdout.splitlines())
