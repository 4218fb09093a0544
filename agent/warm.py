"""A child process started ahead of its work, so the work starts in milliseconds, not seconds.

Job workers (`agent/jobs/spares.py`) and model checks (`agent/models/verifier.py`) start this
way: `python -c BOOT MODULE ARGS FD`. The child's stdin is a life line only the agent holds:
when it ends (the agent died, even by kill -9) the child dies, whatever it was doing, even
while it is still importing. The child imports what its work needs, then waits for one line
on the pipe FD (`read_line`), does that one piece of work and exits: a warm child is never
reused, so nothing one piece of work left behind reaches the next.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from agent.toolkit.children import die_with_parent

__all__ = ["BOOT", "Warm", "boot_command", "die_with_the_agent", "read_line", "start_warm"]

# The life line is watched before the agent package is imported (a second or more on a busy
# kit), then the module runs. Before even that, a child started with `die_with_the_agent`
# gets SIGTERM when the agent's thread that started it dies: a child still starting up has
# nothing of its own yet and just dies; once BOOT runs, SIGTERM or the end of the life line
# kills the child (and its whole group when it leads one, with anything its work started).
# The end of the life line is acted on by the kernel itself (Linux): the pipe is set to
# queue SIGKILL for the child, or its group, when its last writer goes, so a child whose
# main thread holds the GIL in C code (importing ONNX Runtime, building a session) dies at
# once too, not when that returns. The Python-level watch and SIGTERM handler stay as well.
BOOT = """\
import fcntl, os, runpy, signal, sys, threading
leads = os.getpgrp() == os.getpid()
def die(*_):
    if leads:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
signal.signal(signal.SIGTERM, die)
if hasattr(fcntl, "F_SETSIG"):
    fcntl.fcntl(0, fcntl.F_SETOWN, -os.getpid() if leads else os.getpid())
    fcntl.fcntl(0, fcntl.F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_ASYNC)
def watch():
    while os.read(0, 4096):
        pass
    die()
threading.Thread(target=watch, name="agent-watch", daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
die_with_the_agent = die_with_parent  # a child's `preexec_fn`: SIGTERM when the agent's starting thread dies


def boot_command(module: str, *args: str) -> list[str]:
    """`module`'s command line under BOOT."""
    return [sys.executable, "-c", BOOT, module, *args]


@dataclass
class Warm:
    """A child waiting for its one line of work."""

    process: subprocess.Popen[bytes]
    job_pipe: IO[bytes]  # where its line is written

    def send(self, line: str) -> None:
        """Give the child its work; its stdin stays open as its life line."""
        with self.job_pipe:
            self.job_pipe.write(line.encode() + b"\n")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the child alone and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(5)
        self.let_go()

    def let_go(self) -> None:
        for pipe in (self.job_pipe, self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def start_warm(module: str, args: Sequence[str], **popen: Any) -> Warm:
    """Start `module` under BOOT with `args` and, last, the number of its job pipe's read end;
    `popen` are Popen's other arguments (stdin is the life line, a pipe)."""
    read, write = os.pipe()
    try:
        process = subprocess.Popen(
            boot_command(module, *args, str(read)), stdin=subprocess.PIPE, pass_fds=(read,), **popen
        )
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    return Warm(process, os.fdopen(write, "wb"))


def read_line(fd: int) -> str | None:
    """The child's side: the one line written on the job pipe, or None when it closes unwritten."""
    line = b""
    while b"\n" not in line:
        chunk = os.read(fd, 4096)
        if not chunk:
            os.close(fd)
            return None
        line += chunk
    os.close(fd)
    return line.decode().rstrip("\n")
