"""Receipts out and back: what signing, verifying and merging cost over carrying the same files.

A kit's data dir with a day of work: N finished batch-infer jobs with result files of a given
size and their logs, a week of metric samples (60,480 at 10 s) and a few thousand audit entries.
Measured: `export` (read-only DB read, staging, sha256 of every member, ECDSA signature, durable
write), `receive` (signature against the pinned certificate, every member hashed twice, merge
into the inventory), against `cp -r` of the job folders plus a copy of the kit's database (what
carrying the raw files by hand would take, with nothing checked). Printed side by side as ratios.
Run: .venv/bin/python -m benchmarks.receipts [--jobs 50] [--result-mb 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.identity import load_or_create
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.receipts import export
from agent.wire import JobRequest
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.receipts import receive
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from benchmarks._hog import load

SAMPLES, AUDIT = 60_480, 5_000


def make_kit(data_dir: Path, jobs: int, result_bytes: int) -> None:
    data_dir.mkdir(mode=0o700, parents=True)
    load_or_create(data_dir)
    db = Database.open(data_dir)
    try:
        audit, queue = AuditLog(db, 10_000), JobQueue(db)
        with db.transaction() as conn:
            for n in range(SAMPLES):
                conn.execute(
                    "INSERT INTO metrics (slot, seq, ts, cpu_percent, memory_percent, disk_percent) "
                    "VALUES (?, ?, ?, 10, 20, 30)",
                    (n, n, 1_000_000.0 + 10 * n),
                )
        for n in range(AUDIT):
            audit.append(Actor("tok", "app"), "job.submit", f"job{n}", "ok")
        request = JobRequest.model_validate({"kind": "batch-infer", "params": {"model": "m", "folder": "f"}})
        for _ in range(jobs):
            info, _ = queue.submit(request, Submitter("bench", "admin"))
            folder = data_dir / "jobs" / info.job_id
            (folder / "results").mkdir(parents=True)
            (folder / "results" / "results.jsonl").write_bytes(os.urandom(result_bytes // 2).hex().encode())
            (folder / "log.txt").write_text("batch-infer: 1000 image(s)\n" * 200)
            with db.transaction() as conn:
                conn.execute(
                    "UPDATE jobs SET state = 'done', finished_at = ?, updated_at = ?, result = '{}' "
                    "WHERE id = ?",
                    (time.time(), time.time(), info.job_id),
                )
    finally:
        db.close()


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--result-mb", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kit_dir, stick, by_hand = root / "kit", root / "stick", root / "by-hand"
        make_kit(kit_dir, args.jobs, int(args.result_mb * (1 << 20)))
        stick.mkdir()
        start = time.perf_counter()
        size = export(kit_dir, stick).path.stat().st_size
        made = time.perf_counter() - start
        settings = AppSettings.resolve(home=root / "home", mdns_interfaces=["127.0.0.1"])
        fleet = Fleet(settings)
        identity = load_or_create(kit_dir)
        pem = identity.cert_path.read_text()
        fleet.inventory.save(
            Kit(device_id=identity.device_id, name="k", host="127.0.0.1", port=1, cert_pem=pem)
        )
        ops = FleetOps(fleet)
        merged = timed(lambda: receive(ops, stick))
        again = timed(lambda: receive(ops, stick))
        fleet.close()
        by_hand.mkdir()
        copied = timed(
            lambda: subprocess.run(
                ["cp", "-r", str(kit_dir / "jobs"), str(kit_dir / "agent.db"), str(by_hand)], check=True
            )
        )
        shutil.rmtree(by_hand)
    print(
        f"receipt: {args.jobs} jobs x {args.result_mb:g} MB results, {SAMPLES} samples, {AUDIT} audit entries"
    )
    print(f"  file {size / 1e6:.1f} MB; {load()}")
    print(f"  export  {made:7.2f} s   ({made / copied:5.1f}x cp -r of the same files, {copied:.2f} s)")
    print(f"  receive {merged:7.2f} s   ({merged / copied:5.1f}x cp -r)")
    print(f"  receive again (merged before: verified, nothing merged) {again:.2f} s")
    print(f"  export + receive = {(made + merged) / copied:.1f}x carrying the raw files by hand, unchecked")


if __name__ == "__main__":
    main()
