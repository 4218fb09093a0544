"""The app's offline inventory: every kit's pinned identity, token and last-known state.

SQLite through sqlite-utils, schema versioned with `PRAGMA user_version`.
The file holds bearer tokens, so it is created readable by its owner only.
"""

from __future__ import annotations

import logging
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agent.wire import FactFamilies
from app.fleet.errors import KitNotFound
from app.fleet.inventory_ops import v2_fleet_operations, v3_power, v4_rollouts
from app.fleet.precision_store import v5_precision_choices
from app.fleet.sqlite_lib import sqlite_utils
from app.fleet.stored_facts import dump_families, load_families

DB_FILE = "inventory.db"
log = logging.getLogger(__name__)


@dataclass
class Kit:
    device_id: str
    name: str
    host: str
    port: int
    cert_pem: str
    token: str = ""
    token_id: str = ""
    scope: str = "admin"
    kit_model: str = ""
    agent_version: str = ""
    state: str = "adopted"  # adopted | identity_changed
    adopted_at: float = 0.0
    last_seen_at: float | None = None
    last_error: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _v1(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("kits").create(
        {
            f.name: (float if f.name in ("adopted_at", "last_seen_at") else int if f.name == "port" else str)
            for f in fields(Kit)
        },
        pk="device_id",
    )
    db.table("facts").create(
        {"device_id": str, "collected_at": float, "data": str},
        pk="device_id",
        foreign_keys=[("device_id", "kits", "device_id")],
    )


_MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1,
    v2_fleet_operations,
    v3_power,
    v4_rollouts,
    v5_precision_choices,
)


WAL_WAIT_S = 10.0


def _write_ahead(db: sqlite_utils.Database) -> None:
    """Put the inventory in WAL mode. Two commands opening a new home at once (the CLI run
    for each kit in parallel) both try the switch; SQLite answers one of them "locked" at
    once, without its busy timeout, so that one tries again until the other is done."""
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_SIDECARS = ("", "-wal", "-shm", "-journal")


def _owner_only(path: Path) -> None:
    """Take group and other access away, keeping the owner's bits; never through a link."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
        return
    try:
        path.chmod(mode & 0o700)
    except PermissionError:  # not ours to change: say so, the inventory still works
        log.warning(
            "%s is readable by other users and not ours to change (mode %o); it holds "
            "kit tokens: ask its owner to run chmod go-rwx on it",
            path,
            mode,
        )


class Inventory:
    def __init__(self, home: Path) -> None:
        path = self.path = home / DB_FILE
        # The inventory holds bearer tokens: the home and every file of the database are the
        # owner's only, whatever made them (an older kitfleet, a restore, a loose umask). SQLite
        # gives the -wal and -shm the database's own mode, so they follow it.
        for private in (home, *(path.with_name(path.name + s) for s in _SIDECARS)):
            _owner_only(private)
        if not path.exists():
            path.touch(mode=0o600)
        # No sqlite-utils plugins: kitfleet has none, and any installed package that declared one
        # would run code on every connection to the tokens; looking for them read every installed
        # distribution's entry points, 22 ms of each command's start (issue 19).
        self.db = sqlite_utils.Database(path, execute_plugins=False)
        _write_ahead(self.db)
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        # Under the write lock: two commands opening a new home at once must not both migrate.
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise SystemExit(f"{self.path} was written by a newer kitfleet; upgrade the app")
            for step in range(version, len(_MIGRATIONS)):
                _MIGRATIONS[step](self.db)
                conn.execute(f"PRAGMA user_version = {step + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @property
    def app_id(self) -> str:
        """This installation's identity, shown to kits when pairing."""
        rows = list(self.db.table("meta").rows_where("key = ?", ["app_id"]))
        if rows:
            return str(rows[0]["value"])
        # Two commands started at once on a new home race here: the first one's ID wins.
        self.db.table("meta").insert({"key": "app_id", "value": f"app-{uuid.uuid4().hex}"}, ignore=True)
        return str(next(self.db.table("meta").rows_where("key = ?", ["app_id"]))["value"])

    def save(self, kit: Kit) -> None:
        self.db.table("kits").upsert(asdict(kit), pk="device_id")

    def update(self, device_id: str, **changes: Any) -> None:
        self.db.table("kits").update(device_id, changes)

    def record_seen(
        self,
        seen: Mapping[str, float],
        unreachable: Mapping[str, str],
        versions: Mapping[str, str] | None = None,
    ) -> None:
        """When kits answered (device ID -> time), why others did not, and the agent versions
        that changed, in one transaction: a poll round of a thousand kits would otherwise
        commit, and sync the disk, a thousand times."""
        versions = versions or {}
        if not seen and not unreachable and not versions:
            return
        with self.db.conn:
            self.db.conn.executemany(
                "UPDATE kits SET last_seen_at = ?, last_error = '' WHERE device_id = ?",
                [(at, device_id) for device_id, at in seen.items()],
            )
            self.db.conn.executemany(
                "UPDATE kits SET last_error = ? WHERE device_id = ?",
                [(error, device_id) for device_id, error in unreachable.items()],
            )
            self.db.conn.executemany(
                "UPDATE kits SET agent_version = ? WHERE device_id = ?",
                [(version, device_id) for device_id, version in versions.items()],
            )

    def kits(self) -> list[Kit]:
        return [Kit(**row) for row in self.db.table("kits").rows_where(order_by="name")]

    def get(self, device_id: str) -> Kit:
        rows = list(self.db.table("kits").rows_where("device_id = ?", [device_id]))
        if not rows:
            raise KitNotFound(f"no kit with device ID {device_id} in the inventory")
        return Kit(**rows[0])

    def resolve(self, ref: str) -> Kit:
        """Find a kit by name, full device ID, a prefix of its shown ID (`7QXM-2K4D`, at least
        4 characters) or a unique prefix of its name (at least 6)."""
        kits = self.kits()
        key = ref.replace("-", "").lower()
        matches = [k for k in kits if k.name.lower() == ref.lower()] or [
            k
            for k in kits
            if (len(key) >= 4 and k.device_id.startswith(key))
            or (len(ref) >= 6 and k.name.lower().startswith(ref.lower()))
        ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(k.name for k in kits) or "none yet; adopt one with `kitfleet adopt`"
            raise KitNotFound(f"no kit called {ref!r} in the inventory (known kits: {known})")
        names = ", ".join(f"{k.name} ({k.device_id[:8]})" for k in matches)
        raise KitNotFound(f"{ref!r} matches several kits: {names}; give more characters")

    def save_facts(self, device_id: str, facts: FactFamilies) -> None:
        self.save_facts_many({device_id: facts})

    def save_facts_many(self, facts: Mapping[str, FactFamilies]) -> None:
        """Each kit's facts (device ID -> families), read now, in one transaction."""
        if not facts:
            return
        now = time.time()
        with self.db.conn:
            self.db.conn.executemany(
                "INSERT INTO facts (device_id, collected_at, data) VALUES (?, ?, ?) ON CONFLICT "
                "(device_id) DO UPDATE SET collected_at = excluded.collected_at, data = excluded.data",
                [(device_id, now, dump_families(families)) for device_id, families in facts.items()],
            )

    def last_facts(self, device_id: str) -> tuple[FactFamilies, float] | None:
        rows = list(self.db.table("facts").rows_where("device_id = ?", [device_id]))
        if not rows:
            return None
        return load_families(rows[0]["data"]), float(rows[0]["collected_at"])

    def close(self) -> None:
        self.db.close()
