"""A finished job's result files as a receipt brought them, for a kit the laptop cannot reach:
what `jobs results --out` (and the window's Save results) fall back on. The files were checked
when the receipt was received (names from RESULT_FILES, sizes and hashes as signed)."""

from __future__ import annotations

from pathlib import Path

from agent.wire import FINISHED_STATES, JobInfo, JobResults, ResultFile
from app.fleet.inventory import Inventory, Kit
from app.fleet.receipts.merge import job_files
from app.fleet.snapshot import Snapshots

__all__ = ["ReceiptResults", "receipt_results"]


class ReceiptResults:
    """The job as last known, its results listing, and where the kept files are."""

    note = "the kit is away: these are the files its receipt brought back"

    def __init__(self, job: JobInfo, files: list[Path]) -> None:
        self.job, self.files = job, files
        self.listing = JobResults(
            job_id=job.job_id,
            state=job.state,
            result=job.result,
            files=[ResultFile(name=p.name, size=p.stat().st_size) for p in files],
        )


def receipt_results(home: Path, inventory: Inventory, kit: Kit, job_id: str) -> ReceiptResults | None:
    """The job's results as kept from a receipt, or None when no receipt brought them."""
    folder = job_files(home, kit.device_id, job_id)
    snapshot = Snapshots(inventory).get(kit.device_id)
    job = next((j for j in snapshot.jobs if j.job_id == job_id), None) if snapshot else None
    if folder is None or job is None or job.state not in FINISHED_STATES:
        return None
    results = folder / "results"
    files = (
        sorted(p for p in results.iterdir() if p.is_file() and not p.is_symlink()) if results.is_dir() else []
    )
    return ReceiptResults(job, files)
