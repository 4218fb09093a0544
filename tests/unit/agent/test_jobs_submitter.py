"""Who queued a job: recorded with its scope, held to the admin rule in the insert and at start."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.api.errors import status_of
from agent.auth.tokens import TokenStore
from agent.db import Database
from agent.errors import Refusal
from agent.jobs.credentials import SourceSecrets
from agent.jobs.queue import JobQueue, KeyFreed
from agent.jobs.schedules import Schedules
from agent.jobs.submitter import UNKNOWN, Submitter, may_start
from agent.wire import JobRequest, ScheduleRequest


def command(**extra: object) -> JobRequest:
    return JobRequest.model_validate({"kind": "command", "params": {"argv": ["/bin/true"]}, **extra})


def test_the_insert_itself_refuses_a_command_job_from_below_admin(db: Database) -> None:
    queue = JobQueue(db)
    for who in (Submitter("t1", "operator"), Submitter("t2", "viewer"), UNKNOWN):
        with pytest.raises(Refusal) as refused:
            queue.submit(command(), who)
        assert status_of(refused.value) == 403
    assert queue.find() == []
    job, created = queue.submit(command(), Submitter("t3", "admin"))
    row = queue.row(job.job_id)
    assert created
    assert (row["submitted_by"], row["submitter_scope"]) == ("t3", "admin")


def test_a_key_freed_between_the_check_and_the_insert_makes_no_unchecked_job(db: Database) -> None:
    queue = JobQueue(db)
    with pytest.raises(KeyFreed):  # the caller saw the key taken and skipped its checks
        queue.submit(command(idempotency_key="k"), Submitter("t", "admin"), checked=False)
    assert queue.find() == []


def test_a_schedules_jobs_carry_its_creator(db: Database) -> None:
    queue = JobQueue(db, clock=lambda: 1_800_000_000.0)
    schedules = Schedules(queue)
    template = ScheduleRequest.model_validate(
        {"name": "n", "cron": "* * * * *", "job": command().model_dump()}
    )
    made = schedules.create(template, Submitter("boss", "admin"))
    queue.clock = lambda: 1_800_000_000.0 + 61
    (job_id,) = schedules.fire_due()
    assert queue.submitter(queue.row(job_id)) == Submitter("boss", "admin")
    assert db.query("SELECT created_by, creator_scope FROM schedules WHERE id = ?", (made.schedule_id,))[0][
        :
    ] == ("boss", "admin")


def test_a_command_job_starts_only_while_its_admin_token_is_live(db: Database) -> None:
    tokens = TokenStore(db)
    admin_id, _ = tokens.issue("admin app", "admin")
    assert may_start(db, "command", Submitter(admin_id, "admin")) is None
    assert may_start(db, "benchmark", UNKNOWN) is None, "other kinds need no admin"
    assert "no recorded submitter" in str(may_start(db, "command", UNKNOWN))
    assert "operator scope" in str(may_start(db, "command", Submitter(admin_id, "operator")))
    assert "revoked" in str(may_start(db, "command", Submitter("gone", "admin")))
    with db.transaction() as conn:  # downgraded (as a tool editing the table would)
        conn.execute("UPDATE tokens SET scope = 'operator' WHERE id = ?", (admin_id,))
    assert "now operator" in str(may_start(db, "command", Submitter(admin_id, "admin")))
    tokens.revoke(admin_id)
    assert "revoked" in str(may_start(db, "command", Submitter(admin_id, "admin")))


def test_an_old_database_upgrades_with_unknown_submitters(tmp_path: Path) -> None:
    import sqlite3

    from agent import db as dbmod
    from agent import db_schema

    path = tmp_path / dbmod.DB_FILE
    with sqlite3.connect(path) as conn:
        for step in db_schema.MIGRATIONS[:4]:
            conn.executescript(step)
        conn.execute(
            "INSERT INTO jobs (id, kind, request, priority, threads, memory_mb, gpu, state,"
            " max_retries, queued_at, created_at, updated_at) VALUES ('j', 'command', '{}', 0,"
            " 1, 1, 0, 'queued', 0, 0, 0, 0)"
        )
        conn.execute("PRAGMA user_version = 4")
    db = Database.open(tmp_path)
    try:
        row = db.query("SELECT submitted_by, submitter_scope FROM jobs WHERE id = 'j'")[0]
        assert (row[0], row[1]) == (None, None)
        assert may_start(db, "command", JobQueue(db).submitter(db.query("SELECT * FROM jobs")[0]))
    finally:
        db.close()


def test_the_secrets_store_is_the_agents_alone_and_forgets(tmp_path: Path) -> None:
    store = SourceSecrets.in_data_dir(tmp_path)
    store.put("job:a", "rtsp://u:pw-one@cam/x")
    store.put("schedule:s", "rtsp://u:pw-two@cam/x")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.get(["job:b", "schedule:s"]) == "rtsp://u:pw-two@cam/x"
    store.forget(["job:a"])
    assert store.get(["job:a"]) is None
    assert b"pw-one" not in store.path.read_bytes(), "a forgotten password is overwritten"
