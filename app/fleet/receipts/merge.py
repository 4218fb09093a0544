"""`kitfleet bundle receive`: merge kits' receipts into the inventory as if pulled over the network.

Each part goes where a poll puts it: metric samples into the history (keyed by the kit's
sequence numbers), jobs into the kit's last-known state (newest change of each job wins), the
audit segment through the same chain check as a pull (a gap since the copy held is recorded
as a break, shown, never repaired), and the imports the kit reports into their own table. The
inputs a model was unsure about go to `app/fleet/receipts/unsure.py` (once per item id). Job
logs and result files are kept under `receipts/<device_id>/<job_id>/` in the app's home.

A receipt is merged once: its SHA-256 is remembered, and every row it brings has its own key,
so a receipt merged again, or a crash halfway and a second try, leaves the inventory as one
merge would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.toolkit.durable import fsync_path
from agent.wire import JobInfo, MetricSample
from agent.wire.receipts import RECEIPT_SUFFIX, log_member, result_member
from app.fleet.errors import Error
from app.fleet.ops import FleetOps
from app.fleet.receipts.opening import OpenedReceipt, ReceiptRefused, open_receipt, verify_receipt
from app.fleet.receipts.store import ReceiptStore
from app.fleet.receipts.unsure import UnsureCopies
from app.fleet.snapshot import JOBS_KEPT, KitSnapshot

__all__ = ["MAX_FILES", "ReceiveReport", "Received", "async_receive", "job_files", "receipt_files", "receive"]

MAX_FILES = 1000  # receipts in one folder
FOLDER = "receipts"
_NAME = re.compile(r"^([0-9a-f]{64})-([0-9]{1,9})" + re.escape(RECEIPT_SUFFIX) + "$")


@dataclass(frozen=True)
class Received:
    """One receipt merged (or found merged before)."""

    file: Path
    kit_name: str
    device_id: str
    seq: int
    sha256: str
    already: bool
    jobs: int = 0
    samples_new: int = 0
    audit_new: int = 0
    imports_new: int = 0
    unsure_new: int = 0
    chain: str = ""
    chain_ok: bool = True
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """What this receipt merged, in one line for a person."""
        if self.already:
            return f"{self.kit_name}: receipt {self.seq} was merged before; nothing new"
        chain = "audit chain unbroken" if self.chain_ok else f"AUDIT CHAIN: {self.chain}"
        notes = "".join(f"; {note}" for note in self.notes)
        return (
            f"{self.kit_name}: receipt {self.seq}: {self.jobs} job(s), {self.samples_new} new sample(s), "
            f"{self.audit_new} new audit entries, {self.imports_new} import(s), "
            f"{self.unsure_new} new unsure input(s); {chain}{notes}"
        )


@dataclass
class ReceiveReport:
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per receipt: what it merged, or why it was refused."""
        lines = [r.line() for r in self.received]
        lines += [f"REFUSED {why}" for _, why in self.refused]
        return lines or ["no receipt (.kfr) found there"]


def receipt_files(source: Path) -> list[Path]:
    """A file, or a folder's receipts in the order the kits wrote them (by kit, then number)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise Error(f"{source}: no such file or folder")
    found = sorted(p for p in source.iterdir() if p.name.endswith(RECEIPT_SUFFIX) and p.is_file())
    if len(found) > MAX_FILES:
        raise Error(f"{source} holds {len(found)} receipts; receive at most {MAX_FILES} at a time")
    return sorted(found, key=_order)


def _order(path: Path) -> tuple[str, int, str]:
    match = _NAME.match(path.name)
    return (match.group(1), int(match.group(2)), "") if match else ("~", 0, path.name)


def receive(ops: FleetOps, source: Path) -> ReceiveReport:
    """`async_receive` for callers without an event loop."""
    return asyncio.run(async_receive(ops, source))


async def async_receive(ops: FleetOps, source: Path) -> ReceiveReport:
    """Merge every receipt at `source`; a refused one is reported, the others still merge.
    Reading and checking the files runs in a worker thread; the inventory is written here."""
    report = ReceiveReport()
    scratch = ops.fleet.settings.home / FOLDER
    scratch.mkdir(mode=0o700, exist_ok=True)
    _sweep(scratch)
    store = ReceiptStore(ops.fleet.inventory)
    kits = {k.device_id: k for k in ops.fleet.inventory.kits()}
    for path in receipt_files(source):
        try:
            verified = await asyncio.to_thread(verify_receipt, kits, path)
            if store.known(verified.sha256) is not None:  # merged before: nothing to copy or read
                kit = verified.kit
                report.received.append(
                    Received(path, kit.name, kit.device_id, verified.seq, verified.sha256, True)
                )
                continue
            opened = await asyncio.to_thread(open_receipt, verified, scratch)
        except ReceiptRefused as exc:
            report.refused.append((path, str(exc)))
            ops.fleet.audit.record("bundle.receive", path.name, "refused", detail={"message": str(exc)[:256]})
            continue
        try:
            report.received.append(_merge(ops, store, opened, scratch))
        finally:
            opened.close()
    return report


def _sweep(scratch: Path, older_than_s: float = 3600.0) -> None:
    """Remove copies a receive killed halfway left (never one a receive running now may use)."""
    for stale in scratch.glob(".receipt-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > older_than_s:
                shutil.rmtree(stale)


def _merge(ops: FleetOps, store: ReceiptStore, opened: OpenedReceipt, scratch: Path) -> Received:
    receipt, kit = opened.receipt, opened.kit
    _keep_job_files(opened, scratch / kit.device_id)
    unsure_new = _keep_unsure(opened, UnsureCopies(ops.fleet.settings.home))
    samples_new = ops.history.merge(kit.device_id, receipt.metrics)
    held_before = ops.fleet.audit.anchor(kit.device_id)[0]
    audit = ops.fleet.audit
    chain = (
        audit.merge_pulled(kit.device_id, receipt.audit)
        if receipt.audit
        else audit.chain_status(kit.device_id)
    )
    _merge_jobs(ops, kit.device_id, [j.info for j in receipt.jobs], receipt.metrics, receipt.exported_at)
    _prune_job_files(ops, scratch / kit.device_id)
    db = ops.fleet.inventory.db
    with db.conn:
        # the kit was alive when it wrote this (its clock, never past the laptop's): as a poll
        # that answered then, so presence alerts count its absence from there
        db.execute(
            "UPDATE kits SET last_seen_at = ? WHERE device_id = ? AND COALESCE(last_seen_at, 0) < ?",
            (min(receipt.exported_at, time.time()), kit.device_id, min(receipt.exported_at, time.time())),
        )
        imports_new = store.add_imports(kit.device_id, opened.sha256, receipt.imports)
        counts = {
            "jobs": len(receipt.jobs),
            "samples_new": samples_new,
            "audit_new": max(chain.entries - held_before, 0),
            "imports_new": imports_new,
            "unsure_new": unsure_new,
        }
        store.add(opened.sha256, receipt, opened.path.name, time.time(), counts)
    outcome = "ok" if chain.ok else "chain broken"
    ops.fleet.audit.record(
        "bundle.receive",
        f"receipt {receipt.seq}",
        outcome,
        kit.device_id,
        kit.name,
        {"sha256": opened.sha256, **counts},
    )
    return Received(
        opened.path,
        kit.name,
        kit.device_id,
        receipt.seq,
        opened.sha256,
        already=False,
        jobs=len(receipt.jobs),
        samples_new=samples_new,
        audit_new=counts["audit_new"],
        imports_new=imports_new,
        unsure_new=unsure_new,
        chain=chain.summary(),
        chain_ok=chain.ok,
        notes=receipt.notes,
    )


def _merge_jobs(
    ops: FleetOps, device_id: str, jobs: list[JobInfo], samples: list[MetricSample], exported_at: float
) -> None:
    """The kit's last-known state with the receipt's jobs in it, as a poll would leave it."""
    old = ops.snapshots.get(device_id)
    by_id = {j.job_id: j for j in (old.jobs if old else [])}
    for job in jobs:
        held = by_id.get(job.job_id)
        if held is None or job.updated_at >= held.updated_at:
            by_id[job.job_id] = job
    newest = sorted(by_id.values(), key=lambda j: (j.created_at, j.job_id), reverse=True)[:JOBS_KEPT]
    candidates = [s for s in (old.sample if old else None, samples[-1] if samples else None) if s]
    sample = max(candidates, key=lambda s: s.ts) if candidates else None
    told = min(exported_at, time.time())  # the kit's clock may run ahead of the laptop's
    taken_at = max(old.taken_at, told) if old else told
    models = old.models if old else []
    ops.snapshots.save_many(
        [KitSnapshot(device_id=device_id, taken_at=taken_at, sample=sample, models=models, jobs=newest)]
    )


def _keep_job_files(opened: OpenedReceipt, kit_folder: Path) -> None:
    """Each carried job's log and results into `kit_folder/<job_id>/`, replacing an older copy:
    moved from the scratch copy (the same disk), each file synced, then the folders."""
    for job in opened.receipt.jobs:
        job_id = job.info.job_id
        if not job.log_bytes and not job.results:
            continue
        target = kit_folder / job_id
        (target / "results").mkdir(mode=0o700, parents=True, exist_ok=True)
        moves = [(log_member(job_id), target / "log.txt")] if job.log_bytes else []
        moves += [(result_member(job_id, r.name), target / "results" / r.name) for r in job.results]
        for member, kept in moves:
            fsync_path(opened.member(member))
            os.replace(opened.member(member), kept)
        fsync_path(target / "results")
        fsync_path(target)


def _keep_unsure(opened: OpenedReceipt, copies: UnsureCopies) -> int:
    """The unsure inputs the receipt carries, each stored once per kit, model and id."""
    carried = [(kept, opened.member(kept.member)) for kept in opened.receipt.unsure]
    return copies.add_all(opened.kit.device_id, carried)


def _prune_job_files(ops: FleetOps, kit_folder: Path) -> None:
    """Keep the files of the jobs the kit's last-known state still lists (JOBS_KEPT)."""
    if not kit_folder.is_dir():
        return
    snapshot = ops.snapshots.get(kit_folder.name)
    kept = {j.job_id for j in snapshot.jobs} if snapshot else set()
    for folder in kit_folder.iterdir():
        if folder.is_dir() and folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)


def job_files(home: Path, device_id: str, job_id: str) -> Path | None:
    """Where a job's log and results brought by receipt are kept, if any came."""
    folder = home / FOLDER / device_id / job_id
    return folder if folder.is_dir() else None
