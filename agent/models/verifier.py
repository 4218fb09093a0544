"""The agent's side of a model check: size and sha256 here, the rest in a child process.

The child (`agent/models/verify.py`) opens the file with ONNX Runtime: a model that crashes
or hangs it must not take the agent down. Starting Python and importing ONNX Runtime and
NumPy takes a second or more on a busy kit, so a child is started while an upload arrives
(`prepare`) and is ready when the commit comes (`agent/warm.py`). Each check still gets a
fresh process: a child checks one model and exits, and the next check starts another.
This module imports neither NumPy nor ONNX Runtime: the agent itself never needs them to
check a model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.toolkit.hashing import sha256_file
from agent.warm import Warm, start_warm
from agent.wire import Manifest

__all__ = ["READY_FLAG", "VerificationFailed", "Verifier", "stages"]

READY_FLAG = "--ready"  # `python -c BOOT agent.models.verify --ready FD`: see verify.main
_MODULE = "agent.models.verify"
_MAX_ANSWER = 64 * 1024  # a child printing without end cannot exhaust the agent's memory


class VerificationFailed(Exception):
    """The model does not match its manifest; str() says how."""


@dataclass
class _Child:
    warm: Warm
    stderr: IO[bytes]  # an unnamed temp file: a chatty ONNX Runtime cannot block on a full pipe


class Verifier:
    """At most one child waiting, started by `prepare`; `verify` takes it (or starts one)."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ready: _Child | None = None

    def prepare(self) -> None:
        """Start a child unless one is waiting: it imports while the model's bytes arrive."""
        with self._lock:
            if self._ready is not None and self._ready.warm.alive():
                return
            gone, self._ready = self._ready, _start()
        if gone is not None:
            _end(gone)  # died waiting (killed by hand, out of memory): replaced

    def release(self) -> None:
        """Let a waiting child go (no upload is arriving): an idle kit keeps no idle process."""
        with self._lock:
            child, self._ready = self._ready, None
        if child is not None:
            _end(child)

    close = release

    def verify(self, path: Path, manifest: Manifest, digest: str | None = None) -> dict[str, float]:
        """Size and sha256 (`digest` when the upload hashed its bytes as they came, else read
        again), then the child's checks. Returns seconds by stage; raises VerificationFailed."""
        times: dict[str, float] = {}
        size = path.stat().st_size
        if size != manifest.size_bytes:
            raise VerificationFailed(f"the file has {size} bytes, the manifest says {manifest.size_bytes}")
        started = time.perf_counter()
        digest = digest or sha256_file(path)
        times["sha256"] = time.perf_counter() - started
        if digest != manifest.sha256:
            raise VerificationFailed(
                f"sha256 mismatch: the file is {digest}, the manifest says "
                f"{manifest.sha256}; the upload was damaged or the manifest is wrong"
            )
        times.update(self._check(path, manifest))
        return times

    def _check(self, path: Path, manifest: Manifest) -> dict[str, float]:
        with self._lock:
            child, self._ready = self._ready, None
        if child is None or not child.warm.alive():
            if child is not None:
                _end(child)
            child = _start()  # none ready: the same child, given its model at once
        handed = time.monotonic()
        try:
            with contextlib.suppress(OSError):  # it died just now: its exit status says how
                child.warm.send(f"{path}\t{manifest.model_dump_json()}")
            answer, code, timed_out = _wait(child.warm, self.timeout)
            return _judge(answer, code, timed_out, child, handed, self.timeout)
        finally:
            _end(child)


def stages(times: dict[str, float], digest: str | None) -> str:
    """`stage 0.123 s, ...` for the log: where a model's checks spent their time (`digest`:
    the sha256 the upload summed as its bytes came, if it did)."""
    hashed = "sha256 as it arrived" if digest else "sha256 read again"
    return ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in times.items()) + f" ({hashed})"


def _start() -> _Child:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _end
    try:
        # in the agent's own process group, as the checker always was: whatever stops the
        # agent's group stops it too; its life line covers a kill of the agent alone
        warm = start_warm(_MODULE, [READY_FLAG], stdout=subprocess.PIPE, stderr=stderr)
    except BaseException:
        stderr.close()
        raise
    return _Child(warm, stderr)


def _wait(warm: Warm, timeout: float) -> tuple[bytes, int, bool]:
    """(the last bytes it printed, its exit status, whether it was killed for taking too long)."""
    fired = threading.Event()

    def too_long() -> None:
        fired.set()
        warm.process.kill()

    timer = threading.Timer(timeout, too_long)
    timer.start()
    try:
        assert warm.process.stdout is not None
        answer = b""
        while chunk := os.read(warm.process.stdout.fileno(), _MAX_ANSWER):
            answer = (answer + chunk)[-_MAX_ANSWER:]
        code = warm.process.wait()
    finally:
        timer.cancel()
    return answer, code, fired.is_set()


def _judge(
    answer: bytes, code: int, timed_out: bool, child: _Child, handed: float, timeout: float
) -> dict[str, float]:
    if timed_out:
        raise VerificationFailed(f"ONNX Runtime did not load the model within {timeout:g} s")
    said = _parsed(answer)
    if code != 0 or said is None or said.get("problem"):
        problem = said.get("problem") if said else None
        if not problem:
            how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in _SIGNALS else code
            problem = f"the checker died ({how}): {_tail(child.stderr)}"
        raise VerificationFailed(str(problem))
    # how long the model waited for a checker ready to take it (none, when one was kept ready)
    times = {"checker start": max(float(said.get("got", handed)) - handed, 0.0)}
    return times | {str(k): float(v) for k, v in (said.get("times") or {}).items()}


_SIGNALS = {s.value for s in signal.Signals}


def _parsed(answer: bytes) -> dict[str, Any] | None:
    """The child's answer, its last line: {"problem": str | null, "times": {...}, "got": t}."""
    lines = answer.strip().splitlines()
    try:
        said = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return said if isinstance(said, dict) else None


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0, 2)
    stderr.seek(max(stderr.tell() - 300, 0))
    return stderr.read().decode("utf-8", "replace").strip()


def _end(child: _Child) -> None:
    """Kill it if it still runs (a waiting child, or one that timed out), reap it, close all."""
    child.warm.kill()
    child.stderr.close()
