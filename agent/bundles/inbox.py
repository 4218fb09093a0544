"""Bundles handed to the running agent, and the watched folder.

While the agent runs, its watcher holds a lock on `<data_dir>/bundles/inbox/.watcher.lock`.
`kitfleet-agent import` sees the lock taken and hands the file over instead of importing beside
the agent (whose model store and dataset folders tidy their staging on start, and whose job runner
would only notice a queued job at its next sweep): it links or copies the bundle into the inbox
under a temporary name, renames it to `<id>.kfb`, and waits for `<id>.result.json`. The watcher
imports each new `*.kfb` through the agent's own services, writes the result, and removes the
handed-over file. Bundles that appear in `bundle_dir` (a mount point) are imported the same way
but left where they are; one already imported is skipped by its hash record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import Refusal, Unavailable
from agent.toolkit.durable import write_atomic

__all__ = ["Watcher", "hand_over", "watcher_running"]

INBOX = Path("bundles") / "inbox"
_LOCK = ".watcher.lock"
_SUFFIX, _RESULT = ".kfb", ".result.json"
_INBOX_POLL_S = 1.0  # each look wakes the agent: five a second were a third of its idle CPU
log = logging.getLogger(__name__)

Importer = Callable[[Path], dict[str, Any]]  # imports one file, returns the result's summary


def inbox(data_dir: Path) -> Path:
    folder = data_dir / INBOX
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def watcher_running(data_dir: Path) -> bool:
    """True while a running agent's watcher holds the inbox lock."""
    path = data_dir / INBOX / _LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def hand_over(data_dir: Path, bundle: Path, timeout: float = 3600.0) -> dict[str, Any]:
    """Give `bundle` to the running agent and wait for its result (what `import` prints)."""
    folder, name = inbox(data_dir), uuid.uuid4().hex
    tmp = folder / f".{name}.tmp"
    try:
        os.link(bundle, tmp)  # same file system: no copy of a large bundle
    except OSError:
        shutil.copyfile(bundle, tmp)
    os.replace(tmp, folder / f"{name}{_SUFFIX}")
    result, deadline = folder / f"{name}{_RESULT}", time.monotonic() + timeout
    while not result.exists():
        if time.monotonic() > deadline or not watcher_running(data_dir):
            (folder / f"{name}{_SUFFIX}").unlink(missing_ok=True)
            raise Unavailable(
                "agent_did_not_answer",
                "the running agent did not import the bundle in time",
                "look at agent.log; stop the agent to import without it",
            )
        time.sleep(0.2)
    answer: dict[str, Any] = json.loads(result.read_text())
    result.unlink(missing_ok=True)
    return answer


class Watcher:
    """A thread of the running agent: imports handed-over bundles and those in `bundle_dir`."""

    def __init__(self, data_dir: Path, watched: Path | None, poll_s: float, importer: Importer) -> None:
        self._inbox, self._watched, self._poll = inbox(data_dir), watched, max(poll_s, 0.2)
        self._import = importer
        self._seen: set[tuple[str, int, float]] = set()  # watched files looked at, by name/size/mtime
        self._stop = threading.Event()
        self._fd = os.open(self._inbox / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._thread = threading.Thread(target=self._loop, name="bundle-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        os.close(self._fd)  # releases the lock: `import` works on its own again

    def _loop(self) -> None:
        watched_at = 0.0
        while not self._stop.is_set():
            try:
                self.scan_inbox()  # a local folder: cheap to look at, and a technician waits
                if time.monotonic() - watched_at >= self._poll:
                    watched_at = time.monotonic()
                    self.scan_watched()
            except OSError as exc:  # a mount that went away, a full disk: keep going
                log.warning("bundle watcher: %s", exc)
            self._stop.wait(_INBOX_POLL_S)

    def scan_inbox(self) -> None:
        for path in sorted(self._inbox.glob(f"*{_SUFFIX}")):
            result = self._run(path)
            write_atomic(path.with_suffix(_RESULT), json.dumps(result).encode())
            path.unlink(missing_ok=True)

    def scan_watched(self) -> None:
        if self._watched is not None and self._watched.is_dir():
            for path in sorted(self._watched.glob(f"*{_SUFFIX}")):
                stat = path.stat()
                key = (path.name, stat.st_size, stat.st_mtime)
                if time.time() - stat.st_mtime < 2 * self._poll:
                    continue  # still being copied onto the stick, perhaps: next time
                if key not in self._seen:
                    self._seen.add(key)
                    log.info("bundle %s: %s", path.name, self._run(path))

    def _run(self, path: Path) -> dict[str, Any]:
        try:
            return {"ok": True, **self._import(path)}
        except Refusal as exc:
            return {"ok": False, "error": exc.error, "message": exc.message, "hint": exc.hint}
        except Exception as exc:  # a bug: say so in the result rather than leave the CLI waiting
            log.exception("bundle import failed")
            with contextlib.suppress(Exception):
                return {"ok": False, "error": "internal", "message": str(exc)[:500], "hint": None}
            return {"ok": False, "error": "internal", "message": "", "hint": None}
