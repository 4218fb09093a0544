"""Which version of a model serves, remembered between infer requests.

Every request used to read `state.json` and parse and validate the manifest again: a
tenth of a millisecond of the agent's own cost per call, for files that change only when
a technician activates, rolls back or deletes. The answer is now kept with the identity
(inode, size, mtime) of the files it came from and read again only when one of them
changed, so a change made by any path (the API, a job, a restart) is seen on the next
request. `state.json` is replaced whole (a new inode) and a version directory appears by
a rename, so a changed file never keeps its old identity.

A request that finds its answer here costs two `stat` calls on paths kept as strings.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.models.store import MANIFEST_FILE, STATE_FILE, ModelStore, check_name
from agent.wire import Manifest

__all__ = ["ServingModels"]

_Stamp = tuple[int, int, int] | None  # (inode, size, mtime_ns) of a file; None when it is missing


@dataclass(frozen=True)
class _Known:
    state_file: str | None  # None when a version was asked for: the serving one does not matter
    state: _Stamp
    manifest_file: str
    manifest_stamp: _Stamp
    manifest: Manifest
    model: Path

    def current(self) -> bool:
        return (self.state_file is None or _stamp(self.state_file) == self.state) and _stamp(
            self.manifest_file
        ) == self.manifest_stamp


class ServingModels:
    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str | None], _Known] = {}

    def active(self, name: str, version: str | None = None) -> tuple[Manifest, Path]:
        """As `ModelStore.active`: the manifest and file of the serving version (or of `version`)."""
        key = (name, version)
        known = self._known.get(key)  # only names that were valid once are ever stored
        if known is not None and known.current():
            return known.manifest, known.model
        state_file = str(self.store.root / check_name(name) / STATE_FILE) if version is None else None
        state = _stamp(state_file) if state_file else None  # before reading: a change after is seen
        manifest, path = self.store.active(name, version)  # raises the store's 404/409/422
        manifest_file = str(path.parent / MANIFEST_FILE)
        with self._lock:
            self._known[key] = _Known(state_file, state, manifest_file, _stamp(manifest_file), manifest, path)
        return manifest, path


def _stamp(path: str) -> _Stamp:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns
