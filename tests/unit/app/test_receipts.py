"""Receipts out and back, with real kit data dirs (identity, database, audit chain, metrics ring),
real signatures and a real inventory: merged once, impostors and altered files refused."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.identity import load_or_create
from agent.metrics.ring import MetricRing
from agent.receipts import export
from agent.toolkit.bundles import write_bundle
from agent.toolkit.bundlesign import ECDSA_P256, certificate_signer
from agent.wire import MetricSample
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.receipts import ReceiptStore, receive
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings


class FakeKit:
    """A kit's data dir as the agent leaves it (no daemon needed to export)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(mode=0o700, parents=True)
        self.data_dir = data_dir
        self.identity = load_or_create(data_dir)
        self.db = Database.open(data_dir)
        self.audit = AuditLog(self.db, segment_entries=1000)
        self.ring = MetricRing(self.db, 100)

    def work(self, n: int, t0: float = 1_000_000.0) -> None:
        for i in range(n):
            self.audit.append(Actor("tok", "kitfleet (app-x)"), "job.submit", f"job{i}", "ok")
            self.ring.append(
                MetricSample(ts=t0 + i, cpu_percent=10.0, memory_percent=20.0, disk_percent=30.0)
            )

    def kit(self, name: str) -> Kit:
        pem = self.identity.cert_path.read_text()
        return Kit(device_id=self.identity.device_id, name=name, host="127.0.0.1", port=1, cert_pem=pem)


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[FleetOps]:
    fleet = Fleet(AppSettings.resolve(home=tmp_path / "home", mdns_interfaces=["127.0.0.1"]))
    yield FleetOps(fleet)
    fleet.close()


@pytest.fixture
def kit(tmp_path: Path, ops: FleetOps) -> Iterator[FakeKit]:
    made = FakeKit(tmp_path / "kit")
    ops.fleet.inventory.save(made.kit("north"))
    yield made
    made.db.close()


def stick(tmp_path: Path) -> Path:
    folder = tmp_path / "stick"
    folder.mkdir(exist_ok=True)
    return folder


def test_receipts_merge_in_order_once_with_an_unbroken_chain(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    kit.work(5)
    first = export(kit.data_dir, stick(tmp_path))
    kit.work(3, t0=1_000_100.0)
    second = export(kit.data_dir, stick(tmp_path))
    assert (first.receipt.seq, second.receipt.seq) == (1, 2)
    assert first.path.name == f"{kit.identity.device_id}-1.kfr"
    assert second.receipt.start == first.receipt.end, "each receipt continues where the last stopped"

    report = receive(ops, stick(tmp_path))
    assert report.refused == []
    assert [(r.seq, r.already, r.samples_new, r.audit_new) for r in report.received] == [
        (1, False, 5, 5),
        (2, False, 3, 3),
    ]
    device = kit.identity.device_id
    chain = ops.fleet.audit.chain_status(device)
    assert (chain.ok, chain.entries) == (True, 8)
    assert [e.hash for e in ops.fleet.audit.kit_entries(device)] == [e.hash for e in kit.audit.entries()]
    assert ops.history.count(device) == 8
    assert ops.fleet.inventory.get(device).last_seen_at == second.receipt.exported_at, "alive then"

    again = receive(ops, stick(tmp_path))
    assert [(r.seq, r.already) for r in again.received] == [(1, True), (2, True)]
    assert ops.history.count(device) == 8
    assert len(ops.fleet.audit.kit_entries(device)) == 8
    assert [r.seq for r in ReceiptStore(ops.fleet.inventory).receipts(device)] == [2, 1]


def test_a_skipped_receipt_shows_as_a_gap_in_the_chain(tmp_path: Path, ops: FleetOps, kit: FakeKit) -> None:
    kit.work(2)
    export(kit.data_dir, tmp_path)  # this one never reaches the laptop
    kit.work(2, t0=1_000_100.0)
    second = export(kit.data_dir, stick(tmp_path))
    [merged] = receive(ops, second.path).received
    assert not merged.chain_ok
    assert "entry 2 follows 0: entries are missing" in merged.chain


def test_since_zero_exports_everything_again_and_merges_as_one(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    kit.work(4)
    export(kit.data_dir, stick(tmp_path))
    everything = export(kit.data_dir, tmp_path, since=0)
    assert len(everything.receipt.audit) == 4
    receive(ops, stick(tmp_path))
    [merged] = receive(ops, everything.path).received
    assert (merged.already, merged.audit_new, merged.samples_new, merged.chain_ok) == (False, 0, 0, True)


def test_a_receipt_from_an_impostor_kit_is_refused(tmp_path: Path, ops: FleetOps, kit: FakeKit) -> None:
    rogue = FakeKit(tmp_path / "rogue")
    rogue.work(3)
    made = export(rogue.data_dir, tmp_path)
    forged = _forge(made.path, tmp_path / "forged.kfr", kit.identity.device_id, rogue)
    report = receive(ops, forged)
    [(_, why)] = report.refused
    assert "not signed by the key pinned for that kit at adoption" in why
    assert "north" in why
    assert report.received == []
    assert ops.history.count(kit.identity.device_id) == 0
    [(_, unknown)] = receive(ops, made.path).refused
    assert "never adopted" in unknown
    rogue.db.close()


def test_one_byte_flipped_anywhere_is_refused_and_nothing_merged(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    kit.work(3)
    made = export(kit.data_dir, tmp_path)
    data = made.path.read_bytes()
    manifest_at = data.index(b'"kind":"receipt"')
    member_at = data.rindex(b"files/receipt.json")  # its tar header, after the manifest
    payload_at = data.index(b'"device_id":"' + kit.identity.device_id.encode(), member_at)
    for where, says in ((manifest_at + 2, "the file was altered"), (payload_at + 20, "SHA-256")):
        flipped = tmp_path / f"flipped-{where}.kfr"
        flipped.write_bytes(data[:where] + bytes([data[where] ^ 1]) + data[where + 1 :])
        [(_, why)] = receive(ops, flipped).refused
        assert says in why, why
    cut = tmp_path / "cut.kfr"
    cut.write_bytes(data[: len(data) // 2])
    [(_, why)] = receive(ops, cut).refused
    assert "refused" in why
    assert ops.history.count(kit.identity.device_id) == 0
    assert ReceiptStore(ops.fleet.inventory).receipts() == []


def test_export_refuses_a_missing_folder_and_a_data_dir_without_a_kit(tmp_path: Path, kit: FakeKit) -> None:
    from agent.errors import Invalid, NotFound

    with pytest.raises(Invalid, match="is not a folder"):
        export(kit.data_dir, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no kit identity"):
        export(tmp_path / "empty", tmp_path)


def _forge(genuine: Path, out: Path, victim: str, rogue: FakeKit) -> Path:
    """The rogue's receipt, rewritten to claim the victim's device ID, signed with the rogue's key."""
    folder = out.parent / "forge"
    with tarfile.open(genuine) as tar:
        tar.extractall(folder, filter="data")
    body = json.loads((folder / "files" / "receipt.json").read_text())
    body["device_id"] = victim
    (folder / "files" / "receipt.json").write_text(json.dumps(body))
    pem = rogue.identity.cert_path.read_text()
    manifest = {
        "kind": "receipt",
        "signer": {
            "alg": ECDSA_P256,
            "device_id": victim,
            "certificate": pem,
        },
        "targets": [],
        "sequence": 1,
    }
    key = certificate_signer(rogue.identity.key_path.read_bytes())
    write_bundle(out, manifest, [("receipt.json", folder / "files" / "receipt.json")], key)
    return out


def test_import_records_travel_and_the_newest_state_of_each_bundle_wins(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    sha = "ab" * 32
    with kit.db.transaction() as conn:  # as agent/bundles/journal.py records an import under way
        conn.execute(
            "INSERT INTO bundle_imports (bundle_sha256, sequence, signer, outcome, actions, started_at) "
            "VALUES (?, 3, 'k1', 'applying', 2, 1000.0)",
            (sha,),
        )
    export(kit.data_dir, stick(tmp_path))
    with kit.db.transaction() as conn:
        conn.execute(
            "UPDATE bundle_imports SET outcome = 'applied', finished_at = 1010.0 WHERE bundle_sha256 = ?",
            (sha,),
        )
    later = export(kit.data_dir, stick(tmp_path))
    assert [(i.outcome, i.at) for i in later.receipt.imports] == [("applied", 1010.0)]
    assert [r.imports_new for r in receive(ops, stick(tmp_path)).received] == [1, 1]
    [line] = ReceiptStore(ops.fleet.inventory).imports(kit.identity.device_id)
    assert (line.bundle_sha256, line.sequence, line.outcome) == (sha, 3, "applied")
    assert line.receipt_sha256 == later.sha256


def test_a_genuine_kit_cannot_smuggle_paths_or_files_into_the_laptop(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    """Signed by the kit's own key, so only the contents' own checks stand between it and the disk."""
    kit.work(1)
    made = export(kit.data_dir, tmp_path)
    folder = tmp_path / "parts"
    with tarfile.open(made.path) as tar:
        tar.extractall(folder, filter="data")
    body = json.loads((folder / "files" / "receipt.json").read_text())
    job = {
        "job_id": "../../../../home/evil",
        "kind": "batch-infer",
        "label": "",
        "state": "done",
        "request": {"kind": "batch-infer", "params": {"model": "m", "folder": "f"}},
        "attempts": 1,
        "progress": {"done": 1, "total": 1},
        "created_at": 1.0,
        "started_at": 1.0,
        "finished_at": 2.0,
        "updated_at": 2.0,
    }
    body["jobs"] = [{"info": job, "log_bytes": 3}]
    (folder / "files" / "receipt.json").write_text(json.dumps(body))
    (folder / "evil.txt").write_text("hi\n")
    pem = kit.identity.cert_path.read_text()
    manifest = {
        "kind": "receipt",
        "signer": {"alg": ECDSA_P256, "device_id": kit.identity.device_id, "certificate": pem},
        "targets": [],
        "sequence": 1,
    }
    sign = certificate_signer(kit.identity.key_path.read_bytes())
    traversal = tmp_path / "traversal.kfr"
    members = [("receipt.json", folder / "files" / "receipt.json"), ("logs/x.txt", folder / "evil.txt")]
    write_bundle(traversal, manifest, members, sign)
    [(_, why)] = receive(ops, traversal).refused
    assert "not a kit's job id" in why

    body["jobs"] = []
    (folder / "files" / "receipt.json").write_text(json.dumps(body))
    unlisted = tmp_path / "unlisted.kfr"
    write_bundle(unlisted, manifest, members, sign)
    [(_, why)] = receive(ops, unlisted).refused
    assert "do not match what the receipt lists" in why
    assert not (ops.fleet.settings.home / "receipts" / kit.identity.device_id).exists()
    assert ReceiptStore(ops.fleet.inventory).receipts() == []


def test_alerts_are_judged_from_what_a_receipt_brought(tmp_path: Path, ops: FleetOps, kit: FakeKit) -> None:
    """The agent keeps no alerts of its own: the app judges the merged figures as after a poll."""
    import time

    from agent.jobs.queue import JobQueue
    from agent.jobs.submitter import Submitter
    from agent.wire import JobRequest

    request = JobRequest.model_validate({"kind": "batch-infer", "params": {"model": "m", "folder": "f"}})
    info, _ = JobQueue(kit.db).submit(request, Submitter("tok", "admin"))
    with kit.db.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET state = 'failed', error = 'no such folder', finished_at = ?, updated_at = ? "
            "WHERE id = ?",
            (time.time(), time.time(), info.job_id),
        )
    hot = MetricSample(ts=time.time(), cpu_percent=5, memory_percent=5, disk_percent=5, temperature_c=95.0)
    kit.ring.append(hot)
    export(kit.data_dir, stick(tmp_path))
    receive(ops, stick(tmp_path))
    alerts = {(a.kind, a.severity) for a in ops.view(kit.identity.device_id).alerts}
    assert ("jobs", "warning") in alerts
    assert ("temperature", "critical") in alerts
