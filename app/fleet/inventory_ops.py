"""Inventory schema step 2: what the app keeps to run a deployment day while kits come and go.

Metrics history, each kit's last-known state, tags, the app's own audit log and the copies of
the kits' audit logs. Applied by `app.fleet.inventory` as its second migration.
"""

from __future__ import annotations

from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["v2_fleet_operations", "v3_power", "v4_rollouts"]


def v3_power(db: sqlite_utils.Database) -> None:
    """Step 3: the kits' measured power draw in the metrics history (issue 24)."""
    db.execute("ALTER TABLE metrics ADD COLUMN power_w REAL")


def v4_rollouts(db: sqlite_utils.Database) -> None:
    """Step 4: staged rollouts (issue 21), their phase and each kit's state, so a rollout goes on
    after the laptop restarted. At most one live rollout per model: the partial unique index
    refuses a second one even from another kitfleet process started at the same moment."""
    db.execute("""
        CREATE TABLE rollouts (
            rollout_id TEXT PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL,
            phase TEXT NOT NULL, live INTEGER NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
            runner_pid INTEGER, heartbeat_at REAL, created_at REAL NOT NULL,
            updated_at REAL NOT NULL, data TEXT NOT NULL)""")
    db.execute("CREATE UNIQUE INDEX rollouts_one_live ON rollouts (model) WHERE live = 1")
    db.execute("""
        CREATE TABLE rollout_kits (
            rollout_id TEXT NOT NULL, device_id TEXT NOT NULL, kit_name TEXT NOT NULL,
            wave INTEGER NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL,
            updated_at REAL NOT NULL, PRIMARY KEY (rollout_id, device_id))""")


def v2_fleet_operations(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE metrics (
            device_id TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
            cpu_percent REAL NOT NULL, memory_percent REAL NOT NULL, disk_percent REAL NOT NULL,
            temperature_c REAL, disk_free_bytes INTEGER, battery_percent REAL,
            PRIMARY KEY (device_id, seq))""")
    db.execute("CREATE INDEX metrics_kit_ts ON metrics (device_id, ts)")
    db.execute("""
        CREATE TABLE snapshots (
            device_id TEXT PRIMARY KEY, taken_at REAL NOT NULL, data TEXT NOT NULL)""")
    db.execute("""
        CREATE TABLE tags (
            device_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (device_id, tag))""")
    db.execute("""
        CREATE TABLE app_audit (
            seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor_id TEXT NOT NULL,
            actor_label TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
            outcome TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL, device_id TEXT NOT NULL)""")
    db.execute("CREATE INDEX app_audit_kit ON app_audit (device_id, seq)")
    db.execute("""
        CREATE TABLE kit_audit (
            device_id TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
            actor_id TEXT NOT NULL, actor_label TEXT NOT NULL, action TEXT NOT NULL,
            target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (device_id, seq))""")
    db.execute("""
        CREATE TABLE kit_audit_state (
            device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, last_hash TEXT NOT NULL,
            problems TEXT NOT NULL, checked_at REAL NOT NULL)""")
