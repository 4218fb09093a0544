"""The app's own audit log and the copies of kits' logs: chained, verified, breaks kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from agent.wire import AUDIT_GENESIS, AuditEntry, audit_hash
from app.fleet.audit import AppAudit
from app.fleet.client import Call
from app.fleet.inventory import Inventory

KIT = "c" * 64


def kit_log(n: int, start: int = 1, prev: str = AUDIT_GENESIS, target: str = "t") -> list[AuditEntry]:
    """A kit's log as the agent writes it."""
    entries = []
    for seq in range(start, start + n):
        fields: dict[str, Any] = {
            "ts": 1000.0 + seq,
            "actor_id": "tok",
            "actor_label": "kitfleet (app-x)",
            "action": "job.submit",
            "target": f"{target}{seq}",
            "outcome": "ok",
            "detail": {},
        }
        entry = AuditEntry(seq=seq, prev_hash=prev, hash=audit_hash(prev, seq, **fields), **fields)
        entries.append(entry)
        prev = entry.hash
    return entries


def test_calls_are_recorded_with_their_outcome_and_the_chain_verifies(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    audit.record_call(
        Call("kit-1", KIT, "POST", "/v1/jobs", {"kind": "benchmark", "label": "b"}, 201, {"job_id": "j1"})
    )
    audit.record_call(
        Call(
            "kit-1",
            KIT,
            "POST",
            "/v1/models/digits/activate",
            {"version": "9"},
            404,
            {"error": "version_not_found", "message": "no"},
            "no version 9",
        )
    )
    audit.record_call(Call("kit-1", KIT, "POST", "/v1/jobs/j1/cancel", None, None, None, "unreachable"))
    audit.record_call(Call("kit-1", KIT, "GET", "/v1/jobs", None, 200, []))  # not audited
    audit.record("provision", "root@10.0.0.5", "ok", KIT, "kit-1", {"version": "0.1.0"})
    entries = audit.entries()
    assert [(e.action, e.target, e.outcome) for e in entries] == [
        ("job.submit", "j1", "ok"),
        ("model.activate", "digits 9", "404 version_not_found"),
        ("job.cancel", "j1", "no answer"),
        ("provision", "root@10.0.0.5", "ok"),
    ]
    assert all(e.detail["kit"] == "kit-1" and e.actor_id == inventory.app_id for e in entries)
    assert audit.verify() == []
    assert audit.entries(device_id="d" * 64) == []


def test_an_edited_app_log_fails_verification(inventory: Inventory, tmp_path: Path) -> None:
    audit = AppAudit(inventory)
    for n in range(3):
        audit.record("job.submit", f"j{n}", "ok", KIT, "kit-1")
    with closing(sqlite3.connect(tmp_path / "inventory.db")) as conn, conn:
        conn.execute("UPDATE app_audit SET outcome = '403 insufficient_scope' WHERE seq = 2")
    assert audit.verify() == ["entry 2 was altered after it was written"]


def test_pulls_continue_from_the_anchor_and_store_each_entry_once(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    log = kit_log(5)
    assert audit.merge_pulled(KIT, log[:3]).ok
    assert audit.anchor(KIT) == (3, log[2].hash)
    status = audit.merge_pulled(KIT, log[2:])  # the kit answers from the anchor on
    assert status.ok
    assert status.entries == 5
    assert [e.seq for e in audit.kit_entries(KIT)] == [1, 2, 3, 4, 5]


def test_a_log_rewritten_on_the_kit_is_flagged_and_the_old_copy_kept(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    log = kit_log(3)
    audit.merge_pulled(KIT, log)
    forged = kit_log(4, target="forged")  # rewritten end to end, with fresh hashes
    status = audit.merge_pulled(KIT, forged[2:])
    assert status.problems == [
        "entry 3 on the kit differs from the copy pulled before",
        "entry 4 does not link to the entry before it",
    ]
    assert [e.target for e in audit.kit_entries(KIT)][:3] == ["t1", "t2", "t3"]
    assert not audit.merge_pulled(KIT, []).ok  # stays flagged on later, quiet pulls


def test_a_log_cut_short_on_the_kit_is_flagged(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    audit.merge_pulled(KIT, kit_log(3))
    assert "no longer holds entry 3" in audit.merge_pulled(KIT, []).problems[0]


def test_a_whole_log_check_finds_edits_before_the_anchor(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    log = kit_log(4)
    audit.merge_pulled(KIT, log)
    edited = log[1].model_copy(update={"outcome": "403 insufficient_scope"})
    status = audit.check_whole(KIT, [log[0], edited, log[2], log[3]])
    assert "entry 2 was altered after it was written" in status.problems
    cut = audit.check_whole(KIT, log[:2]).problems[-1]
    assert cut == "2 entries pulled before are gone from the kit (from 3)"


def test_a_whole_log_check_of_an_untouched_log_is_clean(inventory: Inventory) -> None:
    audit = AppAudit(inventory)
    log = kit_log(4)
    audit.merge_pulled(KIT, log[:2])
    status = audit.check_whole(KIT, log)
    assert status.ok
    assert status.entries == 4
    assert "verified, 4 entries" in status.summary()


def _rotating_kit(tmp_path: Path) -> Any:
    from agent.audit import Actor, AuditLog
    from agent.db import Database

    (tmp_path / "kit").mkdir()
    log = AuditLog(Database.open(tmp_path / "kit"), segment_entries=10, segments_kept=3)

    def write(n: int) -> list[AuditEntry]:
        for i in range(n):
            log.append(Actor("tok", "kitfleet (app-x)"), "job.submit", f"j{i}", "ok")
        return list(log.entries())

    return write


def test_a_kit_log_rotated_since_the_last_pull_verifies_and_says_where_it_starts(
    inventory: Inventory, tmp_path: Path
) -> None:
    audit, write = AppAudit(inventory), _rotating_kit(tmp_path)
    assert audit.check_whole(KIT, write(8)).ok  # the app holds entries 1-8
    entries = write(80)  # the kit drops its oldest segments
    assert entries[0].seq > 8
    status = audit.check_whole(KIT, entries)
    assert status.ok, status.problems
    assert f"kept from entry {entries[0].seq} on" in status.summary()
    assert "this app keeps 8 of them" in status.summary()
    assert audit.merge_pulled(KIT, write(3)[-4:]).ok  # polling goes on from the new anchor


def test_a_poll_after_rotation_starts_at_the_kits_first_segment(inventory: Inventory, tmp_path: Path) -> None:
    audit, write = AppAudit(inventory), _rotating_kit(tmp_path)
    assert audit.merge_pulled(KIT, write(5)).ok
    kept = write(80)
    assert audit.merge_pulled(KIT, kept).ok  # entries 6.. rotated out before this pull
    cut = [e for e in kept if e.seq > kept[0].seq + 1]  # a start that is no segment's: a break
    assert not AppAudit(inventory).check_whole("d" * 64, cut).ok
