"""The app's own audit log, and each kit's log pulled into the inventory and verified.

The app's log says what was done from this laptop (adopt, deploy, activate/rollback, job
submit/cancel, provision, revoke), however it ended, with this installation as the actor. It
is hash-chained like the kits' logs, so one check serves both. A kit's log is copied as it is;
a chain that breaks, on the kit or against the copy pulled before, is recorded and shown with
the copy kept as evidence, never repaired or hidden.

A kit bounds its log by dropping its oldest segments (agent/audit.py); the copy here keeps
what it pulled before. A kit's log that starts later than entry 1 is whole when it starts at
a segment entry that vouches for the cut (`ChainCheck`) and links to the copy held, if any.
"""

from __future__ import annotations

import getpass
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.wire import (
    AUDIT_GENESIS,
    AUDIT_SEGMENT,
    AuditEntry,
    ChainCheck,
    audit_hash,
    audit_subject,
    audited_call,
    verify_chain,
)
from app.fleet.client import Call
from app.fleet.inventory import Inventory
from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["AppAudit", "ChainStatus"]

_COLUMNS = (
    "seq",
    "ts",
    "actor_id",
    "actor_label",
    "action",
    "target",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)
_MAX_PROBLEMS = 50


@dataclass(frozen=True)
class ChainStatus:
    """How much of a kit's log the inventory holds, and what is wrong with it."""

    device_id: str
    entries: int
    problems: list[str] = field(default_factory=list)
    checked_at: float | None = None
    note: str = ""  # why the log could not be read this time, e.g. the token's scope

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            return f"BROKEN: {self.problems[0]}" + (
                f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            )
        if self.checked_at is None:
            return self.note or "not pulled yet"
        return f"verified, {self.entries} entries" + (f"; {self.note}" if self.note else "")


class AppAudit:
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._db: sqlite_utils.Database = inventory.db
        self.actor_id = inventory.app_id
        self.actor_label = f"kitfleet ({_who()})"

    # the app's own log -----------------------------------------------------------------

    def record(
        self,
        action: str,
        target: str,
        outcome: str,
        device_id: str = "",
        kit_name: str = "",
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry for something the technician did (to a kit, when named)."""
        detail = {**(detail or {}), **({"kit": kit_name, "device_id": device_id} if device_id else {})}
        fields: dict[str, Any] = {
            "ts": time.time(),
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": detail,
        }
        with self._db.conn:
            if not self._db.conn.in_transaction:  # another kitfleet process may append at once
                self._db.conn.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT seq, hash FROM app_audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (row[0] + 1, row[1]) if row else (1, AUDIT_GENESIS)
            entry = AuditEntry(
                seq=seq, prev_hash=prev_hash, hash=audit_hash(prev_hash, seq, **fields), **fields
            )
            self._db.execute(
                f"INSERT INTO app_audit ({', '.join(_COLUMNS)}, device_id) VALUES ({_marks(11)})",  # noqa: S608 - constant column names
                (*_row(entry), device_id),
            )
        return entry

    def record_call(self, call: Call) -> None:
        """KitClient's hook: every audited call, named as the kit names it."""
        found = audited_call(call.method, call.path)
        if found is None:
            return
        action, params = found
        target, detail = audit_subject(action, params, call.sent, call.answer)
        if call.status is None:
            outcome = "no answer"
        elif call.status < 400:
            outcome = "ok"
        else:
            error = call.answer.get("error", "error") if isinstance(call.answer, dict) else "error"
            outcome = f"{call.status} {error}"
        if call.error:
            detail["message"] = call.error[:256]
        kit = call.answer.get("name") if action == "kit.adopt" and isinstance(call.answer, dict) else None
        self.record(action, target, outcome, call.device_id, str(kit or call.kit), detail)

    def entries(self, device_id: str | None = None, limit: int = 1000) -> list[AuditEntry]:
        """The app's newest entries (about one kit, when given), oldest first."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM app_audit {where} ORDER BY seq DESC LIMIT ?",  # noqa: S608
            (*params, limit),
        ).fetchall()
        return [_entry(row) for row in reversed(rows)]

    def verify(self) -> list[str]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM app_audit ORDER BY seq").fetchall()  # noqa: S608 - constant column names
        return verify_chain([_entry(r) for r in rows], AUDIT_GENESIS)

    # the kits' logs --------------------------------------------------------------------

    def chain_status(self, device_id: str) -> ChainStatus:
        row = self._db.execute(
            "SELECT last_seq, problems, checked_at FROM kit_audit_state WHERE device_id = ?", (device_id,)
        ).fetchone()
        if row is None:
            return ChainStatus(device_id, 0)
        return ChainStatus(device_id, row[0], json.loads(row[1]), row[2])

    def chain_statuses(self) -> dict[str, ChainStatus]:
        """Every kit's `chain_status` in one read: the views of a thousand kits ask each round."""
        rows = self._db.execute("SELECT device_id, last_seq, problems, checked_at FROM kit_audit_state")
        return {row[0]: ChainStatus(row[0], row[1], json.loads(row[2]), row[3]) for row in rows.fetchall()}

    def anchor(self, device_id: str) -> tuple[int, str]:
        """The last entry held: where the next pull continues the chain from."""
        row = self._db.execute(
            "SELECT last_seq, last_hash FROM kit_audit_state WHERE device_id = ?", (device_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (0, AUDIT_GENESIS)

    def merge_pulled(self, device_id: str, entries: list[AuditEntry]) -> ChainStatus:
        """Store entries pulled from a kit, checking each link. Entries the copy already holds
        (the anchor, repeated on purpose, or all a pull made from an older anchor brought, when
        another pull was merged first) are compared with it, never chained after it."""
        with self._serial(device_id):
            return self._merge(device_id, entries)

    def merge_pulled_many(self, pulled: Mapping[str, list[AuditEntry]]) -> dict[str, ChainStatus]:
        """`merge_pulled` for each kit of a poll round, in one transaction: a commit per kit
        (each syncing the disk) held a thousand kits' round past the poll interval."""
        if not pulled:
            return {}
        with ExitStack() as held:
            for device_id in sorted(pulled):  # one order everywhere: no two merges deadlock
                held.enter_context(_kit_lock(self._inventory.path, device_id))
            with self._db.conn:
                if not self._db.conn.in_transaction:
                    self._db.conn.execute("BEGIN IMMEDIATE")
                return {device_id: self._merge(device_id, entries) for device_id, entries in pulled.items()}

    def _merge(self, device_id: str, entries: list[AuditEntry]) -> ChainStatus:
        held_seq, held_hash = self.anchor(device_id)
        old = self.chain_status(device_id)
        problems = list(old.problems)
        overlap = [e for e in entries if e.seq <= held_seq]
        if overlap and held_seq > 0:
            held = self._held_hashes(device_id, overlap[0].seq, held_seq)
            problems += [
                f"entry {e.seq} on the kit differs from the copy pulled before"
                for e in overlap
                if held.get(e.seq, e.hash) != e.hash
            ]
            entries = [e for e in entries if e.seq > held_seq]
        elif held_seq > 0 and not entries:
            problems.append(
                f"the kit's log no longer holds entry {held_seq}, pulled before: it was cut short or replaced"
            )
        start = (held_hash if held_seq else AUDIT_GENESIS, held_seq)
        if entries and entries[0].seq > held_seq + 1 and entries[0].action == AUDIT_SEGMENT:
            # the kit rotated out entries this app never pulled: its kept chain starts here
            start = (entries[0].prev_hash, entries[0].seq - 1)
        problems += verify_chain(entries, *start)
        if not entries and problems == old.problems and time.time() - (old.checked_at or 0) < 60:
            return old  # nothing new: spare the inventory a commit on every poll
        last_seq, last_hash = (entries[-1].seq, entries[-1].hash) if entries else (held_seq, held_hash)
        return self._keep(device_id, entries, last_seq, last_hash, problems)

    def check_whole(
        self, device_id: str, entries: list[AuditEntry], held_before: int | None = None
    ) -> ChainStatus:
        """Check a kit's whole log, read from its first entry, against itself and the copy held:
        a chain rewritten end to end with fresh hashes still differs from what was pulled before.

        `held_before`: the anchor when the read began; entries held after it and after the
        newest read came from a pull merged meanwhile, not from a kit that lost them."""
        with self._serial(device_id):
            return self._check_whole(device_id, entries, held_before)

    def _check_whole(self, device_id: str, entries: list[AuditEntry], held_before: int | None) -> ChainStatus:
        held = {e.seq: e.hash for e in self.kit_entries(device_id, limit=-1)}
        check = ChainCheck()
        check.add(entries)
        problems = check.finish()
        kept_from = check.kept_from or 1
        problems += [
            f"entry {e.seq} on the kit differs from the copy pulled before"
            for e in entries
            if held.get(e.seq, e.hash) != e.hash
        ]
        if entries and held.get(kept_from - 1, entries[0].prev_hash) != entries[0].prev_hash:
            problems.append(
                f"entry {kept_from} on the kit does not link to entry {kept_from - 1} pulled before"
            )
        seen = {e.seq for e in entries}
        newest = max(held, default=0) if held_before is None else max(held_before, *seen, 0)
        gone = sorted(seq for seq in set(held) - seen if kept_from <= seq <= newest or not entries)
        if gone:
            problems.append(f"{len(gone)} entries pulled before are gone from the kit (from {gone[0]})")
        old = self.chain_status(device_id)
        new = [e for e in entries if e.seq not in held]
        last = max(entries, key=lambda e: e.seq) if entries else None
        held_seq, held_hash = self.anchor(device_id)
        status = self._keep(  # never moves the anchor back: a pull merged meanwhile may be newer
            device_id,
            new,
            max(last.seq if last else 0, held_seq),
            last.hash if last and last.seq >= held_seq else held_hash,
            old.problems + problems,
        )
        return replace(status, note=_rotated_note(check, held))

    def _keep(
        self, device_id: str, entries: list[AuditEntry], last_seq: int, last_hash: str, problems: list[str]
    ) -> ChainStatus:
        """Store pulled entries and where the chain now ends, in the caller's transaction
        (`_serial`), or one of its own."""
        with nullcontext() if self._db.conn.in_transaction else self._db.conn:
            self._db.conn.executemany(
                f"INSERT OR IGNORE INTO kit_audit (device_id, {', '.join(_COLUMNS)}) "  # noqa: S608
                f"VALUES ({_marks(11)})",
                [(device_id, *_row(e)) for e in entries],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO kit_audit_state (device_id, last_seq, last_hash, problems, "
                "checked_at) VALUES (?, ?, ?, ?, ?)",
                (device_id, last_seq, last_hash, json.dumps(_dedup(problems)), time.time()),
            )
        return self.chain_status(device_id)

    @contextmanager
    def _serial(self, device_id: str) -> Iterator[None]:
        """One merge of a kit's log at a time: a lock for this process's threads (each with its
        own connection), and the database's write lock, taken before reading the anchor, for
        other kitfleet processes. Reading the anchor and writing after it are one step."""
        with _kit_lock(self._inventory.path, device_id), self._db.conn:
            if not self._db.conn.in_transaction:
                self._db.conn.execute("BEGIN IMMEDIATE")
            yield

    def _held_hashes(self, device_id: str, first: int, last: int) -> dict[int, str]:
        rows = self._db.execute(
            "SELECT seq, hash FROM kit_audit WHERE device_id = ? AND seq BETWEEN ? AND ?",
            (device_id, first, last),
        ).fetchall()
        return {int(seq): str(h) for seq, h in rows}

    def kit_entries(self, device_id: str, limit: int = 1000) -> list[AuditEntry]:
        """The newest entries pulled from one kit, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM kit_audit WHERE device_id = ? "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?",
            (device_id, limit),
        ).fetchall()
        return [_entry(row) for row in reversed(rows)]


_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _kit_lock(inventory: Path, device_id: str) -> threading.Lock:
    """The lock of one kit's log in one inventory, shared by every thread of this process."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((str(inventory), device_id), threading.Lock())


def _rotated_note(check: ChainCheck, held: dict[int, str]) -> str:
    """Where the kit's kept chain starts, and how much of what it dropped this app still has."""
    note = check.describe()
    kept_here = sum(1 for seq in held if seq < check.kept_from)
    return f"{note}; this app keeps {kept_here} of them" if note and kept_here else note


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _row(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        entry.seq,
        entry.ts,
        entry.actor_id,
        entry.actor_label,
        entry.action,
        entry.target,
        entry.outcome,
        json.dumps(entry.detail, sort_keys=True),
        entry.prev_hash,
        entry.hash,
    )


def _entry(row: Any) -> AuditEntry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["detail"] = json.loads(values["detail"])
    return AuditEntry(**values)


def _dedup(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))[:_MAX_PROBLEMS]
