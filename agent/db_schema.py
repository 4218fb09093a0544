"""The agent database's schema, as upgrade steps: step N moves `PRAGMA user_version` from N to N+1.

Never edit a step that has shipped; add one. `agent/db.py` runs the steps a database lacks.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: tuple[str, ...] = (
    # 1: trust (tokens, pairing) and the metrics ring
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('viewer', 'operator', 'admin')),
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    CREATE TABLE pairing_code (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        key BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE pairing_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        failures INTEGER NOT NULL DEFAULT 0,
        lockouts INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0
    );
    INSERT INTO pairing_lock (id) VALUES (1);
    CREATE TABLE metrics (
        slot INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        cpu_percent REAL NOT NULL,
        memory_percent REAL NOT NULL,
        disk_percent REAL NOT NULL,
        temperature_c REAL
    );
    CREATE INDEX metrics_ts ON metrics (ts);
    """,
    # 2: resumable model uploads
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        manifest TEXT NOT NULL,
        activate INTEGER NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('receiving', 'verifying', 'installed', 'failed')),
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX uploads_model ON uploads (name, version, sha256);
    """,
    # 3: the durable job queue and cron schedules (agent/jobs/)
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        request TEXT NOT NULL,
        priority INTEGER NOT NULL,
        threads INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL,
        gpu INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE,
        state TEXT NOT NULL CHECK (state IN
            ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
        attempts INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER NOT NULL,
        not_before REAL NOT NULL DEFAULT 0,
        queued_at REAL NOT NULL,
        progress_done INTEGER NOT NULL DEFAULT 0,
        progress_total INTEGER,
        lease_owner TEXT,
        lease_expires_at REAL,
        worker_pid INTEGER,
        schedule_id TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        updated_at REAL NOT NULL,
        result TEXT,
        error TEXT
    );
    CREATE INDEX jobs_state ON jobs (state, priority DESC, queued_at);
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        cron TEXT NOT NULL,
        template TEXT NOT NULL,
        missed TEXT NOT NULL CHECK (missed IN ('skip', 'run_once')),
        enabled INTEGER NOT NULL,
        next_run_at REAL,
        last_run_at REAL,
        last_job_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 4: the hash-chained audit log (agent/audit.py), and battery and free disk in the metrics ring
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor_id TEXT NOT NULL,
        actor_label TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    ALTER TABLE metrics ADD COLUMN disk_free_bytes INTEGER;
    ALTER TABLE metrics ADD COLUMN battery_percent REAL;
    """,
    # pairing failures counted per client address (agent/auth/pairing.py); pairing_lock becomes
    # the ceiling for all addresses together, counted within a window
    """
    CREATE TABLE pairing_clients (
        client TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        lockouts INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    ALTER TABLE pairing_lock ADD COLUMN window_start REAL NOT NULL DEFAULT 0;
    """,
    # who queued each job and made each schedule, with the token's scope then (agent/jobs/
    # submitter.py); rows from before stay NULL: unknown, so an old command job does not start
    """
    ALTER TABLE jobs ADD COLUMN submitted_by TEXT;
    ALTER TABLE jobs ADD COLUMN submitter_scope TEXT;
    ALTER TABLE schedules ADD COLUMN created_by TEXT;
    ALTER TABLE schedules ADD COLUMN creator_scope TEXT;
    """,
    # the audit log rotates by segments (agent/audit.py): each row here starts a kept segment,
    # and only rows before the first kept segment may be deleted
    """
    CREATE TABLE IF NOT EXISTS audit_segments (start_seq INTEGER PRIMARY KEY);
    INSERT OR IGNORE INTO audit_segments (start_seq) SELECT seq FROM audit ORDER BY seq LIMIT 1;
    DROP TRIGGER IF EXISTS audit_append_only_delete;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        WHEN OLD.seq >= COALESCE((SELECT MIN(start_seq) FROM audit_segments), 0)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # a queue that stays quick at 100,000 jobs (agent/jobs/queue.py): the pick order stored as a
    # key (queued_at - priority * aging_s, smallest first) with a partial index over queued rows
    # only; the unfinished count kept by triggers in the same transaction as each change, so it
    # is right after a kill -9 or a power cut; `job_order.aging_s` says which aging the keys
    # were made with (the queue makes them again when the setting changes)
    """
    ALTER TABLE jobs ADD COLUMN pick_key REAL;
    CREATE TABLE job_order (id INTEGER PRIMARY KEY CHECK (id = 1), aging_s REAL NOT NULL);
    INSERT INTO job_order (id, aging_s) VALUES (1, 600.0);
    UPDATE jobs SET pick_key = queued_at - priority * 600.0;
    CREATE TRIGGER jobs_pick_key AFTER INSERT ON jobs WHEN NEW.pick_key IS NULL
        BEGIN UPDATE jobs SET pick_key = NEW.queued_at - NEW.priority *
            (SELECT aging_s FROM job_order WHERE id = 1) WHERE rowid = NEW.rowid; END;
    CREATE INDEX jobs_pick ON jobs (pick_key, queued_at) WHERE state = 'queued';
    CREATE INDEX jobs_not_before ON jobs (not_before) WHERE state = 'queued';
    CREATE INDEX jobs_schedule ON jobs (schedule_id);
    CREATE TABLE job_counts (id INTEGER PRIMARY KEY CHECK (id = 1), unfinished INTEGER NOT NULL);
    INSERT INTO job_counts (id, unfinished)
        SELECT 1, count(*) FROM jobs WHERE state IN ('queued', 'running');
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs WHEN NEW.state IN ('queued', 'running')
        BEGIN UPDATE job_counts SET unfinished = unfinished + 1 WHERE id = 1; END;
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs WHEN OLD.state IN ('queued', 'running')
        BEGIN UPDATE job_counts SET unfinished = unfinished - 1 WHERE id = 1; END;
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
        WHEN (OLD.state IN ('queued', 'running')) != (NEW.state IN ('queued', 'running'))
        BEGIN UPDATE job_counts SET unfinished = unfinished
            + (CASE WHEN NEW.state IN ('queued', 'running') THEN 1 ELSE -1 END) WHERE id = 1; END;
    """,
    # the kit's measured power draw in the metrics ring (issue 24; NULL where nothing measures)
    "ALTER TABLE metrics ADD COLUMN power_w REAL",
    # signed bundles (issue 22, agent/bundles/): the app keys trusted to sign them, one record per
    # bundle imported or refused, a journal of each bundle's actions (a re-import after a crash
    # finishes what is left and repeats nothing), and the highest sequence accepted (no replay)
    """
    CREATE TABLE trusted_signers (
        key_id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        label TEXT NOT NULL,
        source TEXT NOT NULL,
        added_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE bundle_imports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bundle_sha256 TEXT NOT NULL UNIQUE,
        sequence INTEGER,
        signer TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL CHECK (outcome IN ('applying', 'applied', 'failed', 'refused')),
        message TEXT NOT NULL DEFAULT '',
        actions INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE bundle_actions (
        bundle_sha256 TEXT NOT NULL,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('done', 'failed')),
        detail TEXT NOT NULL DEFAULT '',
        at REAL NOT NULL,
        PRIMARY KEY (bundle_sha256, idx)
    );
    CREATE TABLE bundle_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
    INSERT INTO bundle_sequence (id, last) VALUES (1, 0);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
