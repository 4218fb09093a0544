"""Job folders: data roots that cannot be escaped, bounded logs, and the retention policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.api.errors import status_of
from agent.db import Database
from agent.errors import Refusal
from agent.jobs.files import JobFiles
from agent.jobs.leases import Leases
from agent.jobs.paths import data_roots, images_under, resolve_folder
from agent.jobs.queue import JobQueue
from agent.jobs.retention import DAY_S, sweep
from agent.jobs.submitter import Submitter
from agent.wire import JobRequest

ADMIN = Submitter("admin-token", "admin")  # command jobs need one


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data" / "datasets" / "cats").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    return data_roots([], tmp_path / "data")[0]


@pytest.mark.parametrize("folder", ["../../secret", "/etc", "cats/../../../secret", "cats/\0"])
def test_folders_outside_the_data_roots_are_refused(root: Path, folder: str) -> None:
    with pytest.raises(Refusal) as refused:
        resolve_folder(folder, [root])
    assert (status_of(refused.value), refused.value.error) == (422, "path_outside_data_roots")


def test_a_symlink_out_of_the_root_is_refused(root: Path) -> None:
    os.symlink(root.parent.parent / "secret", root / "sneaky")
    with pytest.raises(Refusal) as refused:
        resolve_folder("sneaky", [root])
    assert refused.value.error == "path_outside_data_roots"


def test_folders_inside_resolve_and_missing_ones_say_so(root: Path) -> None:
    assert resolve_folder("cats", [root]) == root / "cats"
    assert resolve_folder(str(root / "cats"), [root]) == root / "cats"
    with pytest.raises(Refusal) as missing:
        resolve_folder("dogs", [root])
    assert missing.value.error == "folder_not_found"


def test_image_listing_skips_links_leading_out(root: Path) -> None:
    outside = root.parent.parent / "secret" / "x.png"
    outside.write_bytes(b"png")
    (root / "cats" / "a.jpg").write_bytes(b"jpg")
    (root / "cats" / "notes.txt").write_text("no")
    os.symlink(outside, root / "cats" / "b.png")
    assert [p.name for p in images_under(root / "cats", root)] == ["a.jpg"]


def test_image_listing_reads_the_tree_as_rglob_would(root: Path) -> None:
    """The listing reads each folder once and resolves only links; what it lists and in what
    order is what a resolved `rglob` gives: nested folders in path order, links inside kept,
    linked folders not entered, a folder reached through a link outside the root listed empty."""
    cats = root / "cats"
    outside = root.parent.parent / "secret"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "y.png").write_bytes(b"png")
    for name in ("b/c.jpg", "a.b/c.PNG", "a/b.jpeg", "Z.jpg", "b c.Png", ".jpg", "jpg"):
        (cats / name).parent.mkdir(exist_ok=True)
        (cats / name).write_bytes(b"img")
    (cats / "folder.jpg").mkdir()
    os.symlink(cats / "Z.jpg", cats / "again.jpg")  # inside the root: kept
    os.symlink(outside / "sub", cats / "linked")  # a linked folder: not entered
    os.symlink(outside / "none.jpg", cats / "dangling.jpg")
    os.symlink(outside, root / "out")

    def by_rglob(folder: Path) -> list[Path]:
        return [
            p
            for p in sorted(folder.rglob("*"))
            if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
            and p.is_file()
            and p.resolve().is_relative_to(root)
        ]

    listed = images_under(cats, root)
    assert [str(p.relative_to(cats)) for p in listed] == [
        "Z.jpg",
        "a/b.jpeg",
        "a.b/c.PNG",
        "again.jpg",
        "b/c.jpg",
        "b c.Png",
    ]
    assert listed == by_rglob(cats)
    assert images_under(root / "out", root) == by_rglob(root / "out") == []


def test_the_log_is_bounded_and_read_by_offset(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "jobs", max_log_bytes=200)
    for n in range(20):
        files.log("j", f"line {n}")
    text, end = files.read_log("j", 0, 10_000)
    assert end <= 200 + 100
    assert text.endswith("first 200 bytes of a job's log]\n")
    rest, again = files.read_log("j", end, 10_000)
    assert (rest, again) == ("", end)
    part, middle = files.read_log("j", 0, 30)
    assert middle == 30
    assert part == text[:30]


def test_a_utf8_character_is_never_cut_in_two(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "jobs", max_log_bytes=10_000)
    files.log("j", "€" * 10)
    stamp = len("2026-01-01T00:00:00 ")
    text, end = files.read_log("j", 0, stamp + 4)
    assert text.endswith("€")
    assert end == stamp + 3


def _finished_job(queue: JobQueue, files: JobFiles, size: int) -> str:
    request = JobRequest.model_validate({"kind": "command", "params": {"argv": ["/bin/true"]}})
    job_id = queue.submit(request, ADMIN)[0].job_id
    leases = Leases(queue, "me", 30)
    leases.claim(job_id)
    files.prepare(job_id, {})
    (files.folder(job_id) / "results" / "result.json").write_bytes(b"x" * size)
    leases.finish(job_id, {})
    return job_id


def test_retention_expires_old_and_over_budget_jobs_never_unfinished(db: Database, tmp_path: Path) -> None:
    clock = [1_000_000.0]
    queue = JobQueue(db, clock=lambda: clock[0])
    files = JobFiles(tmp_path / "jobs", 1000)
    old = _finished_job(queue, files, 10)
    clock[0] += 6 * DAY_S
    big, recent = _finished_job(queue, files, 5000), _finished_job(queue, files, 10)
    waiting = queue.submit(JobRequest.model_validate({"kind": "command", "params": {"argv": ["/x"]}}), ADMIN)[
        0
    ]
    (files.root / "orphan").mkdir()
    clock[0] += 1.5 * DAY_S
    assert sweep(queue, files, retention_days=7, max_total_bytes=1_000_000) == [old]
    assert sweep(queue, files, retention_days=7, max_total_bytes=1000) == [big]
    assert {j.job_id for j in queue.find()} == {recent, waiting.job_id}
    assert sorted(files.job_ids()) == [recent]


def test_a_finished_attempt_keeps_its_outcome_until_the_next_attempt(tmp_path: Path) -> None:
    from agent.jobs.worker import _keep_outcome

    files = JobFiles(tmp_path / "jobs", 4096)
    folder = files.prepare("job-1", {"kind": "command"})
    assert files.outcome("job-1") is None, "an attempt that has not finished kept nothing"
    _keep_outcome(folder, {"images": 3})
    assert files.outcome("job-1") == {"images": 3}
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [], "no temp file left"
    files.prepare("job-1", {"kind": "command"})  # a retry starts afresh
    assert files.outcome("job-1") is None
    (folder / "outcome.json").write_text("{not json")  # torn by a crash: not an outcome
    assert files.outcome("job-1") is None
