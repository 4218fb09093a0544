"""Which version of a model serves, remembered between infer requests.

Every request used to read `state.json` and parse and validate the manifest again: a
tenth of a millisecond of the agent's own cost per call, for files that change only when
a technician activates, rolls back or deletes. The answer is now kept with the identity
(inode, size, mtime) of the files it came from and read again only when one of them
changed, so a change made by any path (the API, a job, a restart) is seen on the next
request. `state.json` is replaced whole (a new inode) and a version directory appears by
a rename, so a changed file never keeps its old identity.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent.api.schemas import Manifest
from agent.models.store import MANIFEST_FILE, STATE_FILE, ModelStore, check_name

__all__ = ["ServingModels"]

_Stamp = tuple[int, int, int] | None  # (inode, size, mtime_ns) of a file; None when it is missing


class ServingModels:
    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str | None], tuple[_Stamp, _Stamp, Manifest, Path]] = {}

    def active(self, name: str, version: str | None = None) -> tuple[Manifest, Path]:
        """As `ModelStore.active`: the manifest and file of the serving version (or of `version`)."""
        key = (name, version)
        state = _stamp(self.store.root / check_name(name) / STATE_FILE) if version is None else None
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] == state and known[1] == _stamp(known[3].parent / MANIFEST_FILE):
            return known[2], known[3]
        manifest, path = self.store.active(name, version)  # raises the store's 404/409/422
        with self._lock:
            self._known[key] = (state, _stamp(path.parent / MANIFEST_FILE), manifest, path)
        return manifest, path


def _stamp(path: Path) -> _Stamp:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns
