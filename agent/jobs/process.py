"""One running job's child process: start it, read its reports, stop it.

The worker leads its own process group, so a cancel or timeout kills whatever it
started too. Its stdin is a pipe the agent never writes: when the agent dies (even by
kill -9) the pipe closes and the worker kills itself, so no job runs on unsupervised.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from agent.jobs.layout import HANDED_AT_ENV, WORKER_ERR
from agent.jobs.spares import Spare, die_with_the_agent, worker_command, worker_env
from agent.wire import Resources

Log = Callable[[str], None]


class WorkerProcess:
    def __init__(
        self,
        job_id: str,
        folder: Path,
        resources: Resources,
        timeout_s: float,
        log: Log,
        wake: Callable[[], None],
        kind: str = "",
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.folder = folder
        self.resources = resources
        self.deadline = time.monotonic() + timeout_s
        self.log = log
        self.wake = wake
        self.progress: tuple[int, int | None] = (0, None)
        self.progress_changed = False
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.stopped_because: str | None = None  # set when we kill it
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self, spare: Spare | None = None) -> int:
        """Run the job in `spare` (a worker started ahead, see spares.py), else in a new one."""
        handed_at = time.monotonic()
        if spare is not None:
            try:
                spare.hand(self.folder, self.job_id, self.resources.threads, handed_at)
                self._proc = spare.process
            except OSError:  # it died just now: start cold
                spare.process.kill()
        if self._proc is None:
            self._proc = self._cold(handed_at)
        self._reader = threading.Thread(target=self._read, name=f"job-{self.job_id}", daemon=True)
        self._reader.start()
        return self._proc.pid

    def _cold(self, handed_at: float) -> subprocess.Popen[bytes]:
        env = {
            **worker_env(self.resources.threads),
            "KITFLEET_JOB_ID": self.job_id,
            HANDED_AT_ENV: repr(handed_at),
        }
        with (self.folder / WORKER_ERR).open("ab") as err:
            return subprocess.Popen(
                worker_command(str(self.folder), self.job_id),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=env,
                cwd=self.folder,
                preexec_fn=die_with_the_agent,  # see spares.die_with_the_agent
            )

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in _lines(self._proc.stdout):
            self._event(line)
        self._proc.wait()
        self.wake()

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind = event["t"]
        except (ValueError, KeyError, TypeError):
            self.log(line.decode("utf-8", "replace").rstrip())
            return
        if kind == "progress":
            self.progress = (int(event["done"]), event.get("total"))
            self.progress_changed = True
        elif kind == "log":
            self.log(str(event["line"]))
        elif kind == "result":
            self.result = event["summary"]
        elif kind == "error":
            self.error = str(event["message"])

    @property
    def finished(self) -> bool:
        return self._reader is not None and not self._reader.is_alive()

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def ask_to_stop(self, reason: str, grace_s: float) -> None:
        """SIGUSR1 to the worker alone, then up to `grace_s` for it to exit: a stream ends as if
        its source had, writing its summary (a kind without a handler just dies of it)."""
        self.stopped_because = self.stopped_because or reason
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, signal.SIGUSR1)
        if self._reader is not None:
            self._reader.join(grace_s)  # not join(): closing the life line would kill it

    def kill(self, reason: str) -> None:
        """SIGKILL the whole group; the reader sees EOF and the runner ends the job."""
        self.stopped_because = self.stopped_because or reason
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def join(self, timeout: float) -> None:
        if self._reader is not None:
            self._reader.join(timeout)
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()


def _lines(stream: IO[bytes], limit: int = 64 * 1024) -> Any:
    """Lines of at most `limit` bytes: a worker printing without newlines cannot exhaust memory."""
    while True:
        line = stream.readline(limit)
        if not line:
            return
        yield line
