"""Rollouts in the app's inventory: create (refusing a second live one of a model), save after
every step, pause from another process, and who is running one now (a lease by process ID and
heartbeat, so `rollout resume` takes over from a process that died but never runs beside one
that is alive)."""

from __future__ import annotations

import json
import os
import sqlite3
import time

from app.fleet.inventory import Inventory
from app.fleet.rollout.record import FINISHED, Rollout, RolloutError

__all__ = ["RolloutStore"]

STALE_S = 30.0  # a runner silent this long is taken to be gone, even if its ID is reused


class RolloutStore:
    def __init__(self, inventory: Inventory) -> None:
        self._db = inventory.db

    def create(self, rollout: Rollout) -> None:
        try:
            with self._db.conn:
                self._db.execute(
                    "INSERT INTO rollouts (rollout_id, model, version, phase, live, created_at, "
                    "updated_at, data) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                    (
                        rollout.rollout_id,
                        rollout.model,
                        rollout.version,
                        rollout.phase,
                        rollout.created_at,
                        rollout.created_at,
                        json.dumps(rollout.to_json()),
                    ),
                )
                self._kits(rollout)
        except sqlite3.IntegrityError:
            live = self.live(rollout.model)
            raise RolloutError(
                f"a rollout of {rollout.model} is already under way"
                + (f" ({live.rollout_id}, {live.phase})" if live else "")
                + "; wait for it to finish, or stop it with `kitfleet rollout abort ID` "
                "(`kitfleet rollout list` shows it)"
            ) from None

    def save(self, rollout: Rollout) -> None:
        """Write the whole record and each kit's state in one transaction."""
        now = time.time()
        with self._db.conn:
            self._db.execute(
                "UPDATE rollouts SET phase = ?, live = ?, updated_at = ?, data = ? WHERE rollout_id = ?",
                (
                    rollout.phase,
                    0 if rollout.phase in FINISHED else 1,
                    now,
                    json.dumps(rollout.to_json()),
                    rollout.rollout_id,
                ),
            )
            self._kits(rollout)

    def _kits(self, rollout: Rollout) -> None:
        now = time.time()
        self._db.conn.executemany(
            "INSERT OR REPLACE INTO rollout_kits (rollout_id, device_id, kit_name, wave, state, detail, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(rollout.rollout_id, k.device_id, k.name, k.wave, k.state, k.detail, now) for k in rollout.kits],
        )

    def get(self, rollout_id: str) -> Rollout:
        rows = self._db.execute(
            "SELECT rollout_id, data FROM rollouts WHERE rollout_id = ? OR rollout_id LIKE ?",
            (rollout_id, f"{rollout_id}%" if len(rollout_id) >= 4 else rollout_id),
        ).fetchall()
        exact = [r for r in rows if r[0] == rollout_id]
        if len(exact or rows) != 1:
            what = "matches several rollouts" if rows else "is no rollout"
            raise RolloutError(f"{rollout_id!r} {what}; `kitfleet rollout list` shows their IDs")
        return Rollout.from_json(json.loads((exact or rows)[0][1]))

    def live(self, model: str) -> Rollout | None:
        row = self._db.execute("SELECT data FROM rollouts WHERE model = ? AND live = 1", (model,)).fetchone()
        return Rollout.from_json(json.loads(row[0])) if row else None

    def all(self, limit: int = 50) -> list[Rollout]:
        rows = self._db.execute("SELECT data FROM rollouts ORDER BY created_at DESC LIMIT ?", (limit,))
        return [Rollout.from_json(json.loads(r[0])) for r in rows.fetchall()]

    # pause and the runner's lease -----------------------------------------------------

    def set_paused(self, rollout_id: str, paused: bool) -> None:
        with self._db.conn:
            self._db.execute("UPDATE rollouts SET paused = ? WHERE rollout_id = ?", (int(paused), rollout_id))

    def paused(self, rollout_id: str) -> bool:
        row = self._db.execute("SELECT paused FROM rollouts WHERE rollout_id = ?", (rollout_id,)).fetchone()
        return bool(row and row[0])

    def claim(self, rollout_id: str) -> None:
        """Become the process running this rollout, unless a live one already is."""
        with self._db.conn:
            self._db.conn.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT runner_pid, heartbeat_at FROM rollouts WHERE rollout_id = ?", (rollout_id,)
            ).fetchone()
            pid, beat = (row[0], row[1]) if row else (None, None)
            if pid and pid != os.getpid() and _alive(pid) and time.time() - (beat or 0) < STALE_S:
                raise RolloutError(
                    f"rollout {rollout_id} is being run by process {pid} on this laptop; "
                    f"`kitfleet rollout pause {rollout_id}` stops it, or wait for it"
                )
            self._db.execute(
                "UPDATE rollouts SET runner_pid = ?, heartbeat_at = ? WHERE rollout_id = ?",
                (os.getpid(), time.time(), rollout_id),
            )

    def heartbeat(self, rollout_id: str) -> None:
        with self._db.conn:
            self._db.execute(
                "UPDATE rollouts SET heartbeat_at = ? WHERE rollout_id = ? AND runner_pid = ?",
                (time.time(), rollout_id, os.getpid()),
            )

    def release(self, rollout_id: str) -> None:
        with self._db.conn:
            self._db.execute(
                "UPDATE rollouts SET runner_pid = NULL WHERE rollout_id = ? AND runner_pid = ?",
                (rollout_id, os.getpid()),
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
