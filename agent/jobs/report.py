"""The worker's side of the pipe: progress, log lines and the result as JSON lines on stdout,
and result files written under a byte budget."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from agent.jobs.errors import PermanentFailure

PROGRESS_EVERY_S = 0.2  # the agent stores progress at most twice a second anyway


class Reporter:
    def __init__(self, out: IO[str], results: Path, max_result_bytes: int) -> None:
        self.out = out
        self.results = results
        self.budget = max_result_bytes
        self._last_progress = 0.0

    def _send(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def progress(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if done == total or now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self._send({"t": "progress", "done": done, "total": total})

    def log(self, line: str) -> None:
        self._send({"t": "log", "line": line})

    def error(self, message: str) -> None:
        self._send({"t": "error", "message": message})

    def result(self, summary: dict[str, Any]) -> None:
        self._send({"t": "result", "summary": summary})

    def open(self, name: str) -> BoundedFile:
        return BoundedFile(self, self.results / name)

    def write_json(self, name: str, data: Any) -> None:
        with self.open(name) as handle:
            handle.write(json.dumps(data, indent=2) + "\n")

    def spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise PermanentFailure(
                "the results outgrew this kit's limit per job "
                "(jobs_max_result_bytes); split the input into smaller jobs"
            )


class BoundedFile:
    """A text file whose writes count against the job's result budget."""

    def __init__(self, reporter: Reporter, path: Path) -> None:
        self._reporter = reporter
        self._handle = path.open("w", encoding="utf-8", newline="")

    def write(self, text: str) -> int:
        self._reporter.spend(len(text.encode()))
        return self._handle.write(text)

    def __enter__(self) -> BoundedFile:
        return self

    def __exit__(self, *_: object) -> None:
        self._handle.close()
