"""A child started under BOOT (`agent/warm.py`) dies when its life line ends, even while its
main thread holds the GIL in C code, where neither a Python signal handler nor the watching
thread can run: the kernel kills it (and its group when it leads one)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.warm import Warm, start_warm
from tests.processes import alive

# Starts a grandchild (in the child's process group), tells its pid, then holds the GIL in one C
# call for hours (sum over a range never checks for signals or lets another thread run).
HOLDS_GIL = """
import subprocess, sys
grandchild = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
print(grandchild.pid, flush=True)
sum(range(10**14))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux kernel's kill")


def _start(tmp_path: Path, own_group: bool) -> tuple[Warm, int]:
    (tmp_path / "holds_gil.py").write_text(HOLDS_GIL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    warm = start_warm("holds_gil", [], stdout=subprocess.PIPE, start_new_session=own_group, env=env)
    assert warm.process.stdout is not None
    grandchild = int(warm.process.stdout.readline())
    time.sleep(0.3)  # well inside the C call by now
    return warm, grandchild


def _end_life_line(warm: Warm) -> None:
    assert warm.process.stdin is not None
    warm.process.stdin.close()  # as the agent's death closes it


def _wait_gone(*pids: int) -> list[int]:
    deadline = time.monotonic() + 20  # liveness only: the C call would hold the GIL for hours
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


def test_a_child_leading_its_group_dies_with_its_work_while_holding_the_gil(tmp_path: Path) -> None:
    warm, grandchild = _start(tmp_path, own_group=True)
    try:
        _end_life_line(warm)
        assert _wait_gone(warm.process.pid, grandchild) == []
        assert warm.process.wait(5) == -9
    finally:
        for pid in (warm.process.pid, grandchild):
            if alive(pid):
                os.kill(pid, 9)
        warm.kill()


def test_a_child_in_the_agents_group_dies_alone(tmp_path: Path) -> None:
    """A model check runs in the agent's own group: its life line kills it, never that group
    (the agent, here this test's own process, lives on)."""
    warm, grandchild = _start(tmp_path, own_group=False)
    try:
        _end_life_line(warm)
        assert _wait_gone(warm.process.pid) == []
        assert warm.process.wait(5) == -9
        assert alive(grandchild), "only the child itself is killed, not the group it shares"
    finally:
        os.kill(grandchild, 9)
        warm.kill()
