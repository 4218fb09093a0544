"""Collect a finished job's result files onto the laptop, trusting nothing the kit lists.

A kit names its result files and their sizes; a rogue (or broken) kit could name `../../x`
or `/etc/x`, or send more than it said. So a file is saved only under a plain name the app
accepts, inside a staging folder it has just made under OUT, never through a symbolic link,
never past the size the kit listed, and only when the disk keeps room to spare. The staging
folder is renamed into `OUT/<kit>/<job>/` only once every file is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agent.toolkit.durable import fsync_path
from agent.wire import CONTROL_CHARACTERS, FINISHED_STATES, JobInfo, JobResults, ResultFile
from app.fleet.client import KitClient
from app.fleet.errors import Error, KitUnreachable
from app.fleet.inventory import Kit
from app.fleet.jobs import async_explained, check_job_id
from app.fleet.service import Fleet

__all__ = ["MAX_FILES", "Collected", "Refused", "async_collect", "name_problem", "sort_listing"]

MAX_FILES = 256  # a job lists a handful (RESULT_FILES); far more is a kit misbehaving
MAX_NAME = 100
JOB_RECORD = "job.json"  # written by the app beside the files: no kit may list it
DISK_SPARE = 256 << 20  # left free on the laptop's disk after a download
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WINDOWS_DEVICES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{n}" for n in range(10)),
    *(f"LPT{n}" for n in range(10)),
}


@dataclass(frozen=True)
class Refused:
    """A file the kit listed that the app did not save, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Collected:
    kit: Kit
    job: JobInfo
    results: JobResults
    folder: Path
    files: list[Path]
    refused: list[Refused] = field(default_factory=list)
    note: str = ""  # where the files came from when not from the kit itself


def name_problem(name: str) -> str | None:
    """Why `name` is not a plain result file name the app will save, or None when it is."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if CONTROL_CHARACTERS.search(name):
        return "holds control characters"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "is a path, not a plain file name"
    if name.startswith("."):
        return "is a hidden name (starts with a dot)"
    if name == JOB_RECORD:
        return "is the name of the app's own record of the job"
    if not _PLAIN.fullmatch(name) or name.endswith("."):
        return "has characters other than letters, digits, '.', '_' and '-'"
    if name.split(".")[0].upper() in _WINDOWS_DEVICES:
        return "is a device name on Windows"
    return None


def sort_listing(results: JobResults) -> tuple[list[ResultFile], list[Refused]]:
    """The files the app will save, and those it refuses with the reason."""
    if len(results.files) > MAX_FILES:
        raise Error(
            f"the kit lists {len(results.files)} result files for job {results.job_id}; a job "
            f"has at most {MAX_FILES}: nothing was saved (is this kit what it claims to be?)"
        )
    accepted: list[ResultFile] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for item in results.files:
        problem = name_problem(item.name) or (
            "has a negative size"
            if item.size < 0
            else "is listed twice"
            if item.name.lower() in seen
            else None
        )
        if problem:
            refused.append(Refused(item.name, problem))
        else:
            seen.add(item.name.lower())  # one file per name on case-blind disks too
            accepted.append(item)
    return accepted, refused


async def async_collect(fleet: Fleet, kit: Kit, job_id: str, out: Path, forget: bool = False) -> Collected:
    """Download the job's acceptable result files to `out/<kit>/<job_id>/`, all or nothing.

    Files land in a hidden folder beside the target, which is renamed into place only
    once all are complete; a download that breaks off leaves the previous copy, if any.
    `forget` then deletes the job and its files on the kit.
    """
    check_job_id(job_id)

    async def fetch(client: KitClient) -> Collected:
        job = await client.job(job_id)
        if job.state not in FINISHED_STATES:
            raise Error(
                f"job {job_id} on {kit.name} is still {job.state}; its results come when it "
                f"finishes (`kitfleet jobs watch {kit.name} {job_id}`)"
            )
        results = await client.job_results(job_id)
        accepted, refused = sort_listing(results)
        try:
            folder = _job_folder(out, kit, job_id)
            _check_room(folder.parent, accepted, job_id)
            await _download_all(client, kit, job, accepted, folder)
        except OSError as exc:  # the laptop's side: a full disk, a folder it may not write
            raise Error(f"cannot save the results under {out}: {exc.strerror or exc}") from exc
        if forget:
            await client.delete_job(job_id)
        return Collected(kit, job, results, folder, [folder / item.name for item in accepted], refused)

    try:
        return await async_explained(fleet, kit, fetch)
    except KitUnreachable:
        kept = _from_receipt(fleet, kit, job_id, out)
        if kept is None:
            raise
        return kept


def _from_receipt(fleet: Fleet, kit: Kit, job_id: str, out: Path) -> Collected | None:
    """The files a receipt brought back from the kit, saved as a download saves them."""
    from app.fleet.receipts.results import receipt_results  # receipts import the fleet's ops

    found = receipt_results(fleet.settings.home, fleet.inventory, kit, job_id)
    if found is None:
        return None
    accepted, refused = sort_listing(found.listing)
    kept = {p.name: p for p in found.files}
    folder = _job_folder(out, kit, job_id)
    staging = folder.with_name(f".{job_id}.partial")
    _remove(staging)
    staging.mkdir()
    try:
        for item in accepted:
            shutil.copyfile(kept[item.name], staging / item.name)
        record = {"kit": kit.name, "device_id": kit.device_id, **found.job.model_dump(mode="json")}
        (staging / JOB_RECORD).write_text(json.dumps(record, indent=2))
        _replace_folder(staging, folder)
    finally:
        _remove(staging)
    files = [folder / item.name for item in accepted]
    return Collected(kit, found.job, found.listing, folder, files, refused, found.note)


def _job_folder(out: Path, kit: Kit, job_id: str) -> Path:
    """`out/<kit>/<job_id>`, the kit's folder made if need be and proven to be inside `out`."""
    kit_folder = out / _safe(kit.name)
    kit_folder.mkdir(parents=True, exist_ok=True)
    if kit_folder.is_symlink() or not kit_folder.resolve().is_relative_to(out.resolve()):
        raise Error(
            f"{kit_folder} is a symbolic link or leads outside {out}; results are saved "
            "only into real folders under the one chosen: remove it, or choose another"
        )
    return kit_folder / job_id


def _check_room(where: Path, files: list[ResultFile], job_id: str) -> None:
    """Refuse before downloading when the listed sizes would leave the disk without spare room."""
    total = sum(item.size for item in files)
    free = shutil.disk_usage(where).free
    if files and total > free - DISK_SPARE:
        biggest = max(files, key=lambda item: item.size)
        raise Error(
            f"the results of job {job_id} are listed as {_size(total)} ({biggest.name} alone "
            f"{_size(biggest.size)}), more than the {_size(max(free - DISK_SPARE, 0))} free "
            f"in {where} beside {_size(DISK_SPARE)} kept spare: nothing was saved; free some "
            "space or choose another folder"
        )


async def _download_all(
    client: KitClient, kit: Kit, job: JobInfo, files: list[ResultFile], folder: Path
) -> None:
    """Every accepted file and job.json into a fresh hidden folder, then renamed to `folder`."""
    staging = folder.with_name(f".{job.job_id}.partial")
    _remove(staging)
    staging.mkdir()
    inside = staging.resolve()
    try:
        for item in files:
            dest = staging / item.name
            if dest.resolve().parent != inside:  # the names are plain: this is proof, not hope
                raise Error(f"{item.name!r} would be saved outside {folder}")
            await client.download_result(job.job_id, item.name, dest, item.size)
        (staging / JOB_RECORD).write_text(
            json.dumps({"kit": kit.name, "device_id": kit.device_id, **job.model_dump(mode="json")}, indent=2)
        )
        _replace_folder(staging, folder)
    finally:
        _remove(staging)


def _replace_folder(new: Path, target: Path) -> None:
    _fsync_all(new)
    old = target.with_name(f".{target.name}.old")
    _remove(old)
    if target.is_symlink() or target.exists():
        target.rename(old)  # a link is moved, never followed
    new.rename(target)
    _remove(old)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder, if there is one."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _fsync_all(folder: Path) -> None:
    """Make the files durable before the rename that publishes them (folders too, where possible)."""
    for path in [*folder.iterdir(), *([folder] if os.name == "posix" else [])]:
        fsync_path(path)


def _safe(name: str) -> str:
    """A kit name as one folder name: no separators, no leading dot, bounded."""
    return re.sub(r"[^\w.-]+", "_", name).lstrip(".")[:64] or "kit"


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
