"""A worker process started ahead of its job, so a job starts in milliseconds, not a second.

A spare is an ordinary worker (`worker.py --spare`): its own session and process group,
its stdin a life line only the agent holds (it dies with the agent, spare or not), one
job and then it exits. It has already imported NumPy, ONNX Runtime and the kinds when its
job comes, as one line on a pipe of its own. Its BLAS threads are fixed at one (no job's
limit is below that); each job's model threads come from its own session options.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.jobs.layout import SPARE_FLAG, THREAD_ENV, WORKER_MODULE

SPARE_ERR = ".spare.err"  # what a spare says before it has a job (an import failure)
# Kinds that run a model: what a spare has imported saves them a second or more. Others (a
# command) start cold, as light as before, and never make a spare be kept.
WARM_KINDS = frozenset({"batch-infer", "benchmark", "evaluate", "stream"})
# Run as `python -c BOOT agent.jobs.worker ARGS`: the life line is watched before the agent
# package is imported (a second or more on a busy kit), then the worker module runs. Before
# even that, the kernel sends SIGTERM when the agent's thread that started the worker dies
# (PR_SET_PDEATHSIG, set between fork and exec): a worker still starting up has nothing of
# its own yet and just dies; once BOOT runs, SIGTERM or the end of the life line kills the
# worker's whole group, with anything its job started.
BOOT = """\
import os, runpy, signal, sys, threading
def die(*_):
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
signal.signal(signal.SIGTERM, die)
def watch():
    while os.read(0, 4096):
        pass
    die()
threading.Thread(target=watch, name="agent-watch", daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_the_agent() -> None:
    """`preexec_fn` of a worker: SIGTERM when the agent's starting thread dies (see BOOT).
    Only a call into libc, loaded beforehand: nothing that could wait on a lock after fork."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_command(*args: str) -> list[str]:
    """The worker's command line; it names the worker module (and a cold worker's job), which is
    how a restarted agent recognises a leftover worker."""
    return [sys.executable, "-c", BOOT, WORKER_MODULE, *args]


def worker_env(threads: int) -> dict[str, str]:
    """The environment a worker starts with: little of the agent's, thread pools held to `threads`."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
    return {
        **keep,
        "PYTHONPATH": os.pathsep.join(sys.path),
        **{name: str(threads) for name in THREAD_ENV},
    }


@dataclass
class Spare:
    process: subprocess.Popen[bytes]
    job_pipe: IO[bytes]  # where its job's line is written

    def hand(self, folder: Path, job_id: str, threads: int, at: float) -> None:
        """Give the spare its job; its stdin stays open as its life line."""
        with self.job_pipe:
            self.job_pipe.write(f"{folder}\t{job_id}\t{threads}\t{at}\n".encode())


class Spares:
    """At most one spare worker, started once a job that runs a model has started (a kit that
    runs none keeps no idle process), and again after each job that took it."""

    def __init__(self, jobs_dir: Path, enabled: bool = True) -> None:
        self.jobs_dir = jobs_dir
        self.enabled = enabled
        self.wanted = False
        self._spare: Spare | None = None

    def take(self, kind: str) -> Spare | None:
        """The spare for a job of `kind`, if it is one that gains and a spare is alive; the
        caller hands it the job."""
        if kind not in WARM_KINDS:
            return None
        self.wanted = self.enabled
        spare, self._spare = self._spare, None
        if spare is not None and spare.process.poll() is not None:
            _let_go(spare)  # it died waiting (killed by hand, an import failed): start cold
            return None
        return spare

    def refill(self) -> None:
        """Start a spare if one is wanted and none is waiting."""
        if not self.wanted or self._spare is not None:
            return
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        read, write = os.pipe()
        try:
            with (self.jobs_dir / SPARE_ERR).open("wb") as err:
                process = subprocess.Popen(
                    worker_command(SPARE_FLAG, str(self.jobs_dir), str(read)),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                    env=worker_env(1),
                    cwd=self.jobs_dir,
                    pass_fds=(read,),
                    preexec_fn=die_with_the_agent,
                )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        self._spare = Spare(process, os.fdopen(write, "wb"))

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(spare.process.pid, signal.SIGKILL)
            spare.process.wait(5)
            _let_go(spare)


def _let_go(spare: Spare) -> None:
    for pipe in (spare.job_pipe, spare.process.stdin, spare.process.stdout):
        if pipe is not None:
            pipe.close()
