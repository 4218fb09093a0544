"""Unsure inputs in receipts with real kit data dirs, real signatures and a real inventory: the
byte budget (what waits, what stays on the kit, said in the notes), --no-unsure, the laptop's
bounds per kit and model, and a genuine kit's receipt smuggling names or sizes refused."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.jobs.kinds._unsure import new_id
from agent.receipts import export
from agent.receipts.collect import ExportLimits
from agent.toolkit.bundles import write_bundle
from agent.toolkit.bundlesign import ECDSA_P256, certificate_signer
from agent.wire.field_datasets import UnsureItem, UnsureScore
from app.fleet.ops import FleetOps
from app.fleet.receipts import receive
from app.fleet.receipts.unsure import UnsureCopies
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.unit.app.test_receipts import FakeKit


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


def keep(data_dir: Path, sizes: list[int], model: str = "digits", t0: int = 1_000_000_000_000) -> list[str]:
    """Items as a job's keeper leaves them (image, then its prediction), kept long ago."""
    folder = data_dir / "unsure" / model
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for n, size in enumerate(sizes):
        item_id = new_id(t0 + n)
        (folder / f"{item_id}.png").write_bytes(bytes([n]) * size)
        scores = [UnsureScore(label="3", score=0.5), UnsureScore(label="8", score=0.4)]
        item = UnsureItem(
            id=item_id, model=model, version="1", source=f"{n}.png", kept_at=1.0, top=0.5, margin=0.1,
            classes=scores, size=size,
        )  # fmt: skip
        (folder / f"{item_id}.json").write_text(item.model_dump_json())
        ids.append(item_id)
    return ids


def out(tmp_path: Path) -> Path:
    folder = tmp_path / "stick"
    folder.mkdir(exist_ok=True)
    return folder


def test_what_does_not_fit_waits_and_an_item_over_the_whole_budget_stays_on_the_kit(
    tmp_path: Path, ops: FleetOps, kit: FakeKit
) -> None:
    kit.work(1)
    ids = keep(kit.data_dir, [100, 100, 5000, 100, 100])
    first = export(kit.data_dir, out(tmp_path), limits=ExportLimits(unsure_bytes=250))
    assert [u.item.id for u in first.receipt.unsure] == ids[:2]
    assert any(f"{ids[2]} (5000 bytes) is over the 250 bytes" in n for n in first.receipt.notes)
    assert any("2 more kept input(s) wait for the next receipt" in n for n in first.receipt.notes)
    second = export(kit.data_dir, out(tmp_path), limits=ExportLimits(unsure_bytes=250))
    assert [u.item.id for u in second.receipt.unsure] == ids[3:]
    assert export(kit.data_dir, out(tmp_path)).receipt.unsure == []
    assert (kit.data_dir / "unsure" / "digits" / f"{ids[2]}.png").is_file(), "left on the kit, never deleted"

    [one, two, three] = receive(ops, out(tmp_path)).received
    assert (one.unsure_new, two.unsure_new, three.unsure_new) == (2, 2, 0)
    held = UnsureCopies(ops.fleet.settings.home).held(kit.identity.device_id)
    assert sorted(r.item.id for r in held) == sorted(ids[:2] + ids[3:])
    for received in held:
        source = kit.data_dir / "unsure" / "digits" / received.image.name
        assert received.image.read_bytes() == source.read_bytes()


def test_no_unsure_leaves_them_for_a_later_receipt(tmp_path: Path, kit: FakeKit) -> None:
    kit.work(1)
    ids = keep(kit.data_dir, [10, 10])
    without = export(kit.data_dir, out(tmp_path), limits=ExportLimits(unsure_bytes=0))
    assert without.receipt.unsure == []
    assert without.receipt.end.unsure_after == ""
    later = export(kit.data_dir, out(tmp_path))
    assert [u.item.id for u in later.receipt.unsure] == ids
    with tarfile.open(later.path) as tar:
        names = [m.name for m in tar.getmembers()]
    assert [f"files/unsure/digits/{i}.png" for i in ids] == [n for n in names if "/unsure/" in n]


def test_the_laptop_keeps_each_kit_models_newest_items_within_bounds(
    tmp_path: Path, ops: FleetOps, kit: FakeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.fleet.receipts.unsure.MAX_ITEMS", 3)
    kit.work(1)
    ids = keep(kit.data_dir, [10] * 5)
    export(kit.data_dir, out(tmp_path))
    [merged] = receive(ops, out(tmp_path)).received
    assert merged.unsure_new == 5
    held = UnsureCopies(ops.fleet.settings.home).held(kit.identity.device_id)
    assert [r.item.id for r in held] == ids[::-1][:3]  # the newest three, newest first
    assert len(list((ops.fleet.settings.home / "unsure").rglob("*"))) == 2 + 6  # kit, model, 3 x 2 files


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"item": {"model": "../../etc"}}, "is not a model name"),
        ({"item": {"id": "../../../../tmp/x"}}, "is not a kept input's id"),
        ({"kind": "sh"}, "is not an image kind"),
        ({"item": {"size": 0}}, "a kit keeps 1 to"),
        ({"item": {"size": 11}}, "do not match what the receipt lists"),
    ],
)
def test_a_genuine_kits_receipt_cannot_smuggle_names_or_sizes(
    tmp_path: Path, ops: FleetOps, kit: FakeKit, change: dict[str, object], why: str
) -> None:
    """Signed by the kit's own key: only the contents' checks stand between it and the disk."""
    kit.work(1)
    keep(kit.data_dir, [10])
    made = export(kit.data_dir, tmp_path)
    folder = tmp_path / "parts"
    with tarfile.open(made.path) as tar:
        tar.extractall(folder, filter="data")
    body = json.loads((folder / "files" / "receipt.json").read_text())
    [entry] = body["unsure"]
    [image] = (folder / "files" / "unsure" / "digits").iterdir()
    for key, value in change.items():
        entry[key] = {**entry[key], **value} if isinstance(value, dict) else value
    (folder / "files" / "receipt.json").write_text(json.dumps(body))
    member = f"unsure/{entry['item']['model']}/{entry['item']['id']}.{entry['kind']}"
    pem = kit.identity.cert_path.read_text()
    manifest = {
        "kind": "receipt",
        "signer": {"alg": ECDSA_P256, "device_id": kit.identity.device_id, "certificate": pem},
        "targets": [],
        "sequence": 1,
    }
    members = [("receipt.json", folder / "files" / "receipt.json")]
    if ".." not in member:  # a member path the bundle itself refuses is never written
        members.append((member, image))
    hostile = tmp_path / "hostile.kfr"
    write_bundle(hostile, manifest, members, certificate_signer(kit.identity.key_path.read_bytes()))
    [(_, said)] = receive(ops, hostile).refused
    assert why in said
    assert not (ops.fleet.settings.home / "unsure").exists()


def test_items_kept_just_now_wait_while_a_job_runs(tmp_path: Path, kit: FakeKit) -> None:
    """A job still writing could keep an item with an id below one already exported: while a job
    runs, the last 10 s wait for the next receipt."""
    import time

    from agent.jobs.queue import JobQueue
    from agent.jobs.submitter import Submitter
    from agent.wire import JobRequest

    kit.work(1)
    old = keep(kit.data_dir, [10])
    request = JobRequest.model_validate({"kind": "batch-infer", "params": {"model": "m", "folder": "f"}})
    info, _ = JobQueue(kit.db).submit(request, Submitter("t", "admin"))
    with kit.db.transaction() as conn:
        conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (info.job_id,))
    now = new_id(int(time.time() * 1e6))
    folder = kit.data_dir / "unsure" / "digits"
    (folder / f"{now}.png").write_bytes(b"x" * 10)
    item = UnsureItem.model_validate_json((folder / f"{old[0]}.json").read_text())
    (folder / f"{now}.json").write_text(item.model_copy(update={"id": now}).model_dump_json())
    running = export(kit.data_dir, out(tmp_path))
    assert [u.item.id for u in running.receipt.unsure] == old
    with kit.db.transaction() as conn:
        conn.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (info.job_id,))
    assert [u.item.id for u in export(kit.data_dir, out(tmp_path)).receipt.unsure] == [now]


def test_the_kit_wide_bound_spares_an_item_labelled_while_away(
    tmp_path: Path, ops: FleetOps, kit: FakeKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.fleet.receipts.unsure.MAX_KIT_ITEMS", 3)
    kit.work(1)
    first = keep(kit.data_dir, [10, 10], model="digits")
    export(kit.data_dir, out(tmp_path))
    receive(ops, out(tmp_path))
    copies = UnsureCopies(ops.fleet.settings.home)
    device = kit.identity.device_id
    copies.queue_label(device, first[0], "field", "three")  # the oldest, labelled while away
    shutil.rmtree(kit.data_dir / "unsure" / "digits")
    later = keep(kit.data_dir, [10, 10, 10], model="shapes", t0=2_000_000_000_000)
    export(kit.data_dir, out(tmp_path))
    [_, merged] = receive(ops, out(tmp_path)).received
    assert merged.unsure_new == 3
    held = {r.item.id: r for r in copies.held(device)}
    assert sorted(held) == sorted([first[0], *later])  # the 3 newest unlabelled, and the labelled one
    assert held[first[0]].queued is not None
    assert [r.item.id for r in copies.pending(device)] == [first[0]]
