"""`kitfleet-agent export` on a real data dir: bounded receipts that continue where the last one
stopped, one export at a time, the export point kept apart from the (read-only) database."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.errors import Busy, NotFound
from agent.identity import load_or_create
from agent.metrics.ring import MetricRing
from agent.receipts import export
from agent.receipts.collect import ExportLimits
from agent.receipts.state import FOLDER, STATE_FILE, export_lock
from agent.wire import MetricSample
from agent.wire.receipts import Receipt


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    data_dir = tmp_path / "kit"
    data_dir.mkdir(mode=0o700)
    load_or_create(data_dir)
    db = Database.open(data_dir)
    try:
        ring = MetricRing(db, 1000)
        for n in range(10):
            AuditLog(db).append(Actor("tok", "app"), "job.submit", f"job{n}", "ok")
            ring.append(MetricSample(ts=1000.0 + n, cpu_percent=1.0, memory_percent=2.0, disk_percent=3.0))
    finally:
        db.close()
    return data_dir


def _receipt(path: Path) -> Receipt:
    with tarfile.open(path) as tar:
        member = tar.extractfile("files/receipt.json")
        assert member is not None
        return Receipt.model_validate_json(member.read())


def test_bounded_receipts_continue_where_the_last_stopped(kit: Path, tmp_path: Path) -> None:
    small = ExportLimits(samples=4, audit=3)
    first = export(kit, tmp_path, limits=small)
    assert [s.seq for s in first.receipt.metrics] == [0, 1, 2, 3]
    assert [e.seq for e in first.receipt.audit] == [1, 2, 3]
    assert any("export again" in note for note in first.receipt.notes)
    second = export(kit, tmp_path, limits=small)
    assert [s.seq for s in second.receipt.metrics] == [4, 5, 6, 7]
    assert [e.seq for e in second.receipt.audit] == [3, 4, 5, 6], "the last entry before, then new ones"
    assert second.receipt.audit[1].prev_hash == first.receipt.audit[-1].hash
    assert _receipt(second.path) == second.receipt, "the file holds what export says it wrote"


def test_since_starts_after_an_earlier_receipt_and_refuses_an_unknown_one(kit: Path, tmp_path: Path) -> None:
    export(kit, tmp_path, limits=ExportLimits(samples=5))
    export(kit, tmp_path)
    again = export(kit, tmp_path, since=1)
    assert (again.receipt.seq, again.receipt.metrics[0].seq) == (3, 5)
    with pytest.raises(NotFound, match="remembers no receipt 9"):
        export(kit, tmp_path, since=9)


def test_one_export_at_a_time_and_a_damaged_export_point_starts_over(kit: Path, tmp_path: Path) -> None:
    with export_lock(kit), pytest.raises(Busy, match="another export"):
        export(kit, tmp_path)
    assert not list(tmp_path.glob("*.kfr")), "nothing written while another export ran"
    export(kit, tmp_path)
    state = kit / FOLDER / STATE_FILE
    assert json.loads(state.read_text())["exports"][0]["seq"] == 1
    state.write_text("{not json")
    over = export(kit, tmp_path)
    assert (over.receipt.seq, len(over.receipt.audit)) == (1, 10)


def test_export_leaves_the_database_as_it_was(kit: Path, tmp_path: Path) -> None:
    before = (kit / "agent.db").read_bytes()
    export(kit, tmp_path)
    assert (kit / "agent.db").read_bytes() == before


def test_results_that_do_not_fit_wait_for_the_next_receipt(kit: Path, tmp_path: Path) -> None:
    from agent.jobs.queue import JobQueue
    from agent.jobs.submitter import Submitter
    from agent.wire import JobRequest

    request = JobRequest.model_validate({"kind": "batch-infer", "params": {"model": "m", "folder": "f"}})
    db = Database.open(kit)
    ids = []
    try:
        for n, size in enumerate((400, 400, 400, 5000)):
            info, _ = JobQueue(db).submit(request, Submitter("tok", "admin"))
            results = kit / "jobs" / info.job_id / "results"
            results.mkdir(parents=True)
            (results / "results.jsonl").write_bytes(b"x" * size)
            with db.transaction() as conn:
                conn.execute(
                    "UPDATE jobs SET state = 'done', updated_at = ?, finished_at = ? WHERE id = ?",
                    (2000.0 + n, 2000.0 + n, info.job_id),
                )
            ids.append(info.job_id)
    finally:
        db.close()
    small = ExportLimits(max_results_bytes=1000)
    first = export(kit, tmp_path, limits=small)
    assert [j.info.job_id for j in first.receipt.jobs] == ids[:2]
    assert all(j.results for j in first.receipt.jobs)
    assert any("wait for the next export" in note for note in first.receipt.notes)
    second = export(kit, tmp_path, limits=small)
    assert [j.info.job_id for j in second.receipt.jobs] == ids[2:]
    big = second.receipt.jobs[1]
    assert big.results == []
    assert big.results_left_out == "5000 bytes of results, over the 1000 a receipt carries"


def test_a_fresh_kit_database_is_exported_from_its_start(kit: Path, tmp_path: Path) -> None:
    export(kit, tmp_path)
    for suffix in ("", "-wal", "-shm"):  # as the agent keeps a damaged database aside
        (kit / f"agent.db{suffix}").unlink(missing_ok=True)
    db = Database.open(kit)
    try:
        AuditLog(db).append(Actor("tok", "app"), "kit.adopt", "t", "ok")
    finally:
        db.close()
    after = export(kit, tmp_path)
    assert [e.seq for e in after.receipt.audit] == [1]
    assert any("started afresh" in note for note in after.receipt.notes)
