"""Unsure inputs in a receipt: what carrying them costs over a receipt without them, and over
copying the buffer's files by hand.

A kit's data dir with a little work (a few hundred audit entries) and N kept unsure inputs of
a given size (as a job's keeper leaves them: image, then its prediction). Measured: `export`
with the items (within the default 32 MiB budget) and with `--no-unsure`, `receive` of each
into a fresh laptop home (signature, every member hashed twice, items stored once per id), and
`cp -r` of the kit's `unsure/` folder (carried by hand, nothing checked). Printed as ratios.
Run: .venv/bin/python -m benchmarks.receipt_unsure [--items 500] [--kb 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.identity import load_or_create
from agent.jobs.kinds._unsure import new_id
from agent.receipts import export
from agent.receipts.collect import ExportLimits
from agent.wire.field_datasets import UnsureItem, UnsureScore
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.receipts import receive
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from benchmarks._hog import load


def make_kit(data_dir: Path, items: int, size: int) -> None:
    data_dir.mkdir(mode=0o700, parents=True)
    load_or_create(data_dir)
    db = Database.open(data_dir)
    try:
        audit = AuditLog(db, 10_000)
        for n in range(300):
            audit.append(Actor("tok", "app"), "job.submit", f"job{n}", "ok")
    finally:
        db.close()
    folder = data_dir / "unsure" / "digits"
    folder.mkdir(parents=True)
    scores = [UnsureScore(label="3", score=0.5), UnsureScore(label="8", score=0.45)]
    for n in range(items):
        item_id = new_id(1_000_000_000_000 + n)
        (folder / f"{item_id}.png").write_bytes(os.urandom(size))
        item = UnsureItem(
            id=item_id, model="digits", version="1", source=f"{n}.png", kept_at=1.0, top=0.5,
            margin=0.05, classes=scores, size=size,
        )  # fmt: skip
        (folder / f"{item_id}.json").write_text(item.model_dump_json())


def export_and_receive(
    root: Path, kit_dir: Path, name: str, limits: ExportLimits
) -> tuple[float, float, int]:
    stick = root / f"stick-{name}"
    stick.mkdir()
    (kit_dir / "receipts" / "state.json").unlink(missing_ok=True)  # each run from the start
    start = time.perf_counter()
    size = export(kit_dir, stick, limits=limits).path.stat().st_size
    made = time.perf_counter() - start
    fleet = Fleet(AppSettings.resolve(home=root / f"home-{name}", mdns_interfaces=["127.0.0.1"]))
    identity = load_or_create(kit_dir)
    pem = identity.cert_path.read_text()
    fleet.inventory.save(Kit(device_id=identity.device_id, name="k", host="127.0.0.1", port=1, cert_pem=pem))
    start = time.perf_counter()
    receive(FleetOps(fleet), stick)
    merged = time.perf_counter() - start
    fleet.close()
    return made, merged, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--kb", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kit_dir = root / "kit"
        make_kit(kit_dir, args.items, int(args.kb * 1024))
        bare = export_and_receive(root, kit_dir, "bare", ExportLimits(unsure_bytes=0))
        full = export_and_receive(root, kit_dir, "full", ExportLimits())
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(kit_dir / "unsure"), str(root / "by-hand")], check=True)
        copied = time.perf_counter() - start
    extra_out, extra_in = full[0] - bare[0], full[1] - bare[1]
    print(f"unsure in receipts: {args.items} items x {args.kb:g} KB; {load()}")
    print(f"  receipt without them {bare[2] / 1e6:6.2f} MB, with them {full[2] / 1e6:6.2f} MB")
    print(f"  export  {bare[0]:6.3f} s without, {full[0]:6.3f} s with ({full[0] / bare[0]:.1f}x)")
    print(f"  receive {bare[1]:6.3f} s without, {full[1]:6.3f} s with ({full[1] / bare[1]:.1f}x)")
    print(
        f"  the items' share (export + receive) {extra_out + extra_in:.3f} s = "
        f"{(extra_out + extra_in) / copied:.1f}x cp -r of the unsure folder ({copied:.3f} s), unchecked"
    )


if __name__ == "__main__":
    main()
