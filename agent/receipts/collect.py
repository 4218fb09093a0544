"""Read what happened on the kit after a set of cursors, from its database and job folders.

The database is opened read-only (`mode=ro`) and read in one read transaction: the daemon may
be running and writing (WAL lets both go on), and the export never changes the kit's state.
Everything read is bounded; what a bound leaves out waits for the next export, and the
receipt's notes say so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.db import DB_FILE
from agent.errors import NotFound
from agent.jobs.layout import LOG, RESULTS
from agent.jobs.queue import to_info
from agent.jobs.service import JOBS_DIR
from agent.receipts.unsure import UnsureOut, collect_unsure
from agent.wire import AuditEntry, MetricSample
from agent.wire.jobs import RESULT_FILES, ResultFile
from agent.wire.receipts import (
    MAX_RECEIPT_AUDIT,
    MAX_RECEIPT_IMPORTS,
    MAX_RECEIPT_JOBS,
    MAX_RECEIPT_SAMPLES,
    MAX_RECEIPT_UNSURE,
    ImportReceipt,
    ReceiptCursors,
    ReceiptJob,
)

__all__ = ["Collected", "ExportLimits", "collect"]

MIB = 1 << 20
_METRIC_COLUMNS = (
    "seq, ts, cpu_percent, memory_percent, disk_percent, temperature_c, disk_free_bytes, "
    "battery_percent, power_w"
)
_AUDIT_COLUMNS = "seq, ts, actor_id, actor_label, action, target, outcome, detail, prev_hash, hash"


@dataclass(frozen=True)
class ExportLimits:
    max_log_bytes: int = 256 * 1024  # of each job's log (its first bytes, as the kit keeps them)
    max_results_bytes: int = 256 * MIB  # every result file of the receipt together
    jobs: int = MAX_RECEIPT_JOBS
    samples: int = MAX_RECEIPT_SAMPLES
    audit: int = MAX_RECEIPT_AUDIT - 1  # and the last one exported before, again
    imports: int = MAX_RECEIPT_IMPORTS
    unsure_bytes: int = 32 * MIB  # images of kept unsure inputs; 0: none (they wait, not dropped)
    unsure: int = MAX_RECEIPT_UNSURE


@dataclass
class Collected:
    """What one export carries: the receipt's lists, and the files to put beside it."""

    end: ReceiptCursors
    imports: list[ImportReceipt] = field(default_factory=list)
    jobs: list[ReceiptJob] = field(default_factory=list)
    metrics: list[MetricSample] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    audit_kept_from: int = 1
    logs: dict[str, bytes] = field(default_factory=dict)  # job id -> log bytes
    results: list[tuple[str, str, Path]] = field(default_factory=list)  # job id, name, file
    unsure: UnsureOut = field(default_factory=UnsureOut)
    notes: list[str] = field(default_factory=list)


@contextmanager
def read_only(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The kit's database, read-only, inside one read transaction."""
    path = data_dir / DB_FILE
    if not path.is_file():
        raise NotFound(
            "no_agent_database",
            f"{data_dir} holds no agent database ({DB_FILE})",
            "pass the agent's --data-dir (the one `kitfleet-agent run` uses)",
        )
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")  # one snapshot for every read below
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def collect(data_dir: Path, start: ReceiptCursors, limits: ExportLimits) -> Collected:
    """Everything after `start`, within `limits`."""
    with read_only(data_dir) as conn:
        notes = []
        if _fresh_database(conn, start):
            start = start.model_copy(update={"audit_seq": 0, "audit_hash": "", "metrics_seq": -1})
            notes.append("the kit's database was started afresh since the last export: all it holds is here")
        out = Collected(end=start.model_copy(), notes=notes)
        _audit(conn, start, limits, out)
        _metrics(conn, start, limits, out)
        _jobs(conn, start, limits, out)
        _imports(conn, start, limits, out)
        running = conn.execute("SELECT 1 FROM jobs WHERE state = 'running' LIMIT 1").fetchone() is not None
    _job_files(data_dir / JOBS_DIR, limits, out)
    out.unsure = UnsureOut(after=start.unsure_after)
    if limits.unsure_bytes > 0:
        budget, count = limits.unsure_bytes, limits.unsure
        out.unsure = collect_unsure(data_dir, start.unsure_after, budget, count, settle=running)
        out.notes += out.unsure.notes
    out.end.unsure_after = out.unsure.after
    return out


def _fresh_database(conn: sqlite3.Connection, start: ReceiptCursors) -> bool:
    """The kit's log and ring numbered from the start again (a damaged database kept aside and
    a fresh one begun): the cursors point past anything it holds."""
    audit = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or 0
    metrics = conn.execute("SELECT MAX(seq) FROM metrics").fetchone()[0]
    return audit < start.audit_seq or (metrics if metrics is not None else -1) < start.metrics_seq


def _audit(conn: sqlite3.Connection, start: ReceiptCursors, limits: ExportLimits, out: Collected) -> None:
    """New entries, after the last one exported again: the laptop compares that one with its
    copy (as a network pull does), so a log rewritten since shows, and a receipt with nothing
    new still links to the one before."""
    limit = limits.audit + (1 if start.audit_seq else 0)
    rows = conn.execute(
        f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?",  # noqa: S608 - constant
        (start.audit_seq, limit),
    ).fetchall()
    out.audit = [AuditEntry(**{**dict(r), "detail": json.loads(r["detail"])}) for r in rows]
    if out.audit:
        out.end.audit_seq, out.end.audit_hash = out.audit[-1].seq, out.audit[-1].hash
    if len(rows) == limit:
        out.notes.append(f"audit: the first {limits.audit} new entries; export again for the rest")
    if _has_table(conn, "audit_segments"):
        first = conn.execute("SELECT MIN(start_seq) FROM audit_segments").fetchone()[0]
        out.audit_kept_from = max(int(first or 1), 1)


def _metrics(conn: sqlite3.Connection, start: ReceiptCursors, limits: ExportLimits, out: Collected) -> None:
    rows = conn.execute(
        f"SELECT {_METRIC_COLUMNS} FROM metrics WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608 - constant
        (start.metrics_seq, limits.samples),
    ).fetchall()
    out.metrics = [MetricSample(**dict(r)) for r in rows]
    if out.metrics and out.metrics[-1].seq is not None:
        out.end.metrics_seq = out.metrics[-1].seq
    if len(rows) == limits.samples:
        out.notes.append(f"metrics: the first {limits.samples} new samples; export again for the rest")


def _jobs(conn: sqlite3.Connection, start: ReceiptCursors, limits: ExportLimits, out: Collected) -> None:
    """Jobs that changed after the cursor, oldest change first: a job still running at this
    export changes again when it ends, and comes back in the next receipt."""
    rows = conn.execute(
        "SELECT * FROM jobs WHERE updated_at > ? ORDER BY updated_at, id LIMIT ?",
        (start.jobs_updated_at, limits.jobs),
    ).fetchall()
    out.jobs = [ReceiptJob(info=to_info(row)) for row in rows]
    if rows:
        out.end.jobs_updated_at = float(rows[-1]["updated_at"])
    if len(rows) == limits.jobs:
        out.notes.append(f"jobs: the first {limits.jobs} changed jobs; export again for the rest")


def _job_files(root: Path, limits: ExportLimits, out: Collected) -> None:
    """Each job's log, and a finished job's result files while the receipt has room. A job
    whose results do not fit waits, with the jobs after it, for the next export; one whose
    results alone are over the bound goes without them (said in the receipt), or it would
    hold back every receipt after it."""
    budget = limits.max_results_bytes
    for n, job in enumerate(out.jobs):
        job_id = job.info.job_id
        files = _result_files(root / job_id) if job.info.state == "done" else []
        size = sum(p.stat().st_size for _, p in files)
        if size > budget and size <= limits.max_results_bytes:
            _stop_before(out, n)
            return
        log, job.log_truncated = _head(root / job_id / LOG, limits.max_log_bytes)
        if log:
            out.logs[job_id], job.log_bytes = log, len(log)
        if size > budget:
            job.results_left_out = (
                f"{size} bytes of results, over the {limits.max_results_bytes} a receipt carries"
            )
            out.notes.append(f"job {job_id}: results left on the kit ({job.results_left_out})")
            continue
        budget -= size
        job.results = [ResultFile(name=name, size=p.stat().st_size) for name, p in files]
        out.results += [(job_id, name, p) for name, p in files]


def _result_files(folder: Path) -> list[tuple[str, Path]]:
    return [(n, folder / RESULTS / n) for n in RESULT_FILES if (folder / RESULTS / n).is_file()]


def _stop_before(out: Collected, n: int) -> None:
    """End the receipt's jobs before the n-th: the next export starts with it."""
    left = len(out.jobs) - n
    out.end.jobs_updated_at = out.jobs[n - 1].info.updated_at  # n > 0: the first job always fits
    out.jobs = out.jobs[:n]
    out.notes.append(f"jobs: {left} more changed jobs with results wait for the next export")


def _head(path: Path, limit: int) -> tuple[bytes, bool]:
    """The first `limit` bytes of a file (none when absent), and whether it was longer."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return b"", False
    return data[:limit], len(data) > limit


def _imports(conn: sqlite3.Connection, start: ReceiptCursors, limits: ExportLimits, out: Collected) -> None:
    """The bundles the kit imported or refused (its import records, agent/bundles/journal.py)
    that changed after the cursor: one still applying at this export comes back when it ends."""
    if not _has_table(conn, "bundle_imports"):
        return
    rows = conn.execute(
        "SELECT bundle_sha256, sequence, signer, outcome, message, actions, started_at, "
        "COALESCE(finished_at, started_at) AS at FROM bundle_imports "
        "WHERE COALESCE(finished_at, started_at) > ? ORDER BY at, id LIMIT ?",
        (start.imports_at, limits.imports),
    ).fetchall()
    out.imports = [
        ImportReceipt(**{**dict(r), "message": str(r["message"])[:2000], "signer": str(r["signer"])[:256]})
        for r in rows
    ]
    if rows:
        out.end.imports_at = float(rows[-1]["at"])
    if len(rows) == limits.imports:
        out.notes.append(f"imports: the first {limits.imports} changed records; export again for the rest")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        is not None
    )
