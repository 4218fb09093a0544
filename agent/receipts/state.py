"""Where the kit's exports stopped: `receipts/state.json` in the data dir, written durably.

The database stays untouched by an export (it is read-only there), so the export point lives
in its own small file, replaced atomically after the receipt is on the stick. A crash between
the two makes the next export repeat the same range under the same number: the laptop merges
a receipt's rows by their keys, so a repeat changes nothing there.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from agent.errors import Busy, NotFound
from agent.toolkit.durable import write_atomic
from agent.wire.receipts import ReceiptCursors

__all__ = ["ExportState", "export_lock"]

FOLDER, STATE_FILE, LOCK_FILE = "receipts", "state.json", ".export.lock"
_KEPT = 100  # earlier exports remembered for --since


class ExportRecord(BaseModel):
    seq: int
    at: float
    file: str
    sha256: str
    end: ReceiptCursors


class ExportState(BaseModel):
    exports: list[ExportRecord] = Field(default_factory=list, description="oldest first")

    @classmethod
    def load(cls, data_dir: Path) -> ExportState:
        path = data_dir / FOLDER / STATE_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (ValidationError, ValueError):
            # a damaged file: start again from the beginning; the laptop merges repeats once
            return cls(exports=[])

    def save(self, data_dir: Path) -> None:
        folder = data_dir / FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        write_atomic(folder / STATE_FILE, self.model_dump_json().encode())

    @property
    def next_seq(self) -> int:
        return self.exports[-1].seq + 1 if self.exports else 1

    def start(self, since: int | None) -> ReceiptCursors:
        """Where an export begins: after the last one, after receipt `since`, or (0) at the
        start of everything the kit still holds."""
        if since == 0 or (since is None and not self.exports):
            return ReceiptCursors()
        if since is None:
            return self.exports[-1].end.model_copy()
        for record in self.exports:
            if record.seq == since:
                return record.end.model_copy()
        known = ", ".join(str(r.seq) for r in self.exports[-10:]) or "none yet"
        raise NotFound(
            "no_such_receipt",
            f"this kit remembers no receipt {since} (recent: {known})",
            "pass one of those, or --since 0 for everything the kit still holds",
        )

    def record(self, record: ExportRecord) -> None:
        kept = [r for r in self.exports if r.seq != record.seq][-(_KEPT - 1) :]
        self.exports = [*kept, record]


@contextmanager
def export_lock(data_dir: Path) -> Iterator[None]:
    """One export at a time on a kit: two at once would number their receipts alike."""
    folder = data_dir / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    with (folder / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Busy("export_running", "another export is writing a receipt", "wait for it to end") from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
