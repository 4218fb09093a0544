"""A bounded cache of ONNX Runtime sessions, one per installed model version.

ONNX Runtime is imported only when the first session is made, so an agent that
never runs a model never pays for it in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.toolkit.sessions import default_threads, open_session

__all__ = ["SessionCache"]

_Key = tuple[Path, str]


@dataclass
class _Entry:
    session: Any
    fallback: str | None  # why the accelerator was given up, when it was


class SessionCache:
    """Least-recently-used sessions keyed by (model path, sha256); safe to share between threads."""

    def __init__(self, capacity: int, threads: int | None) -> None:
        self.capacity = max(capacity, 1)  # the model being served must stay loaded
        self.threads = threads or default_threads()
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._loading: dict[_Key, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts; never held while a model loads

    def get(self, path: Path, sha256: str) -> Any:
        """The session for this model file, loading it at most once however many ask at the same time."""
        key = (path, sha256)
        with self._lock:
            cached = self._touch(key)
            if cached is not None:
                return cached
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            try:
                return self._load(key)
            finally:
                with self._lock:
                    if self._loading.get(key) is key_lock:
                        del self._loading[key]

    def cached(self, path: Path, sha256: str) -> Any:
        """The session if it is loaded, else None; never loads one (for callers that must not wait)."""
        with self._lock:
            return self._touch((path, sha256))

    def _touch(self, key: _Key) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.session

    def _load(self, key: _Key) -> Any:
        with self._lock:
            cached = self._touch(key)  # a request that waited on the key lock finds it loaded
        if cached is not None:
            return cached
        # Not spinning: the serving sessions share the cores with the event loop, the TLS
        # work and the requests' decoding, and an intra-op thread that busy-waits after every
        # run took a core from them (benchmarks/batching.py: 1.39x the requests per second
        # at 32 clients without it, the same single-request latency).
        session, fallback = open_session(key[0], self.threads, spinning=False)
        with self._lock:
            self._entries[key] = _Entry(session, fallback)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return session

    def evict(self, path: Path) -> None:
        """Forget every session of this model file (it was deleted or replaced)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == path]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def info(self) -> dict[str, Any]:
        """What is loaded, on which providers, and why an accelerator was dropped if it was."""
        with self._lock:
            entries = list(self._entries.items())
        return {
            "capacity": self.capacity,
            "threads": self.threads,
            "sessions": [
                {
                    "path": str(path),
                    "sha256": sha256,
                    "providers": list(entry.session.get_providers()),
                    "fallback": entry.fallback,
                }
                for (path, sha256), entry in entries
            ],
        }
