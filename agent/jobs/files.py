"""Each job's folder: `spec.json` (what the worker runs), `log.txt`, `results/`, `worker.err`.

Bounds: the log keeps its first `max_log_bytes` (then one truncation line); results
are capped per job by the worker; all jobs' files together by `max_total_bytes`,
beyond which the oldest finished jobs are deleted first (see `retention.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import NotFound
from agent.jobs.layout import LOG, OUTCOME, RESULTS, SPEC, WORKER_ERR
from agent.wire import RESULT_FILES, ResultFile

TRUNCATED = "[log truncated: the kit keeps the first {limit} bytes of a job's log]\n"


class JobFiles:
    def __init__(self, root: Path, max_log_bytes: int) -> None:
        self.root = root
        self.max_log_bytes = max_log_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # log appends come from several reader threads

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def prepare(self, job_id: str, spec: dict[str, Any]) -> Path:
        """A clean results folder for a new attempt; the log carries on across attempts."""
        folder = self.folder(job_id)
        (folder / OUTCOME).unlink(missing_ok=True)  # a new attempt has not finished yet
        shutil.rmtree(folder / RESULTS, ignore_errors=True)
        (folder / RESULTS).mkdir(parents=True)
        (folder / SPEC).write_text(json.dumps(spec))
        return folder

    def outcome(self, job_id: str) -> dict[str, Any] | None:
        """The summary the job's last attempt kept when it finished, or None (see layout.OUTCOME)."""
        try:
            summary = json.loads((self.folder(job_id) / OUTCOME).read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def log(self, job_id: str, text: str) -> None:
        """Append timestamped lines, dropping what goes past the cap."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        data = "".join(f"{stamp} {line}\n" for line in text.splitlines() or [""]).encode()
        path = self.folder(job_id) / LOG
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            size = path.stat().st_size if path.exists() else 0
            if size >= self.max_log_bytes:
                return
            if size + len(data) > self.max_log_bytes:
                data = TRUNCATED.format(limit=self.max_log_bytes).encode()
            try:
                with path.open("ab") as handle:
                    handle.write(data)
            except OSError:  # a full disk: the line is lost, the job (and its reader) carry on
                return

    def read_log(self, job_id: str, offset: int, limit: int) -> tuple[str, int]:
        """Text from `offset` (bytes) and the offset to ask for next."""
        try:
            with (self.folder(job_id) / LOG).open("rb") as handle:
                if offset >= os.fstat(handle.fileno()).st_size:
                    # nothing there yet; and no seek: one far past any file size fails (EINVAL)
                    return "", offset
                handle.seek(offset)
                data = handle.read(limit)
        except FileNotFoundError:
            return "", offset
        if len(data) == limit:  # do not cut a UTF-8 character in two
            data = data[: _last_whole(data)]
        return data.decode("utf-8", "replace"), offset + len(data)

    def worker_error(self, job_id: str, limit: int = 2000) -> str:
        """The end of what the worker printed on stderr (a traceback, usually)."""
        try:
            text = (self.folder(job_id) / WORKER_ERR).read_bytes()[-limit:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return text.strip()

    def results(self, job_id: str) -> list[ResultFile]:
        folder = self.folder(job_id) / RESULTS
        return [
            ResultFile(name=name, size=(folder / name).stat().st_size)
            for name in RESULT_FILES
            if (folder / name).is_file()
        ]

    def result_path(self, job_id: str, name: str) -> Path:
        path = self.folder(job_id) / RESULTS / name
        if name not in RESULT_FILES or not path.is_file():
            raise NotFound(
                "result_not_found",
                f"job {job_id} has no result file {name!r}",
                f"`kitfleet jobs results KIT {job_id}` lists its files",
            )
        return path

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def size(self, job_id: str) -> int:
        return sum(p.stat().st_size for p in self.folder(job_id).rglob("*") if p.is_file())

    def job_ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()]


def _last_whole(data: bytes) -> int:
    """Length of `data` without a trailing partial UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4
            return len(data) if needed <= back else len(data) - back
    return len(data)
