"""What the app sends for a job: the streamed dataset tar (unpacked by the agent's own code) and
the job request, refused with every problem named before any kit is asked."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.jobs.datasets import Datasets
from app.fleet.datasets import DatasetError, async_tar_chunks, scan
from app.fleet.jobspec import JobInputError, JobSpec
from resources import datasets_dir


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    for label in ("3", "7"):
        (folder / label).mkdir(parents=True)
        for image in sorted((datasets_dir() / "digits-eval" / label).glob("*.png"))[:3]:
            (folder / label / image.name).write_bytes(image.read_bytes())
    (folder / "labels.txt").write_text("3\n7\n")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "thumb.png").write_bytes(b"hidden")
    (folder / ("long-" + "x" * 120 + ".PNG")).write_bytes(b"\x89PNG not really, but named like one")
    return folder


def test_the_stream_is_a_tar_the_agent_unpacks_as_is(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    dataset = scan(folder)
    assert dataset.files == 7, "images only: no text file, nothing hidden"
    sent: list[int] = []

    async def upload() -> int:
        agent_side = Datasets(tmp_path / "kit", max_bytes=1 << 20)
        return (await agent_side.upload(dataset.name, async_tar_chunks(dataset, sent.append))).files

    assert asyncio.run(upload()) == 7
    assert sent[-1] == dataset.size, "the announced size is the exact stream length"
    unpacked = tmp_path / "kit" / "datasets" / dataset.name
    for entry in dataset.entries:
        relative = entry.path.relative_to(folder)
        assert (unpacked / relative).read_bytes() == entry.path.read_bytes()


def test_the_name_follows_the_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    first = scan(folder).name
    assert first.startswith("pictures-")
    assert scan(folder).name == first, "the same folder is the same dataset"
    image = next((folder / "3").iterdir())
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert scan(folder).name != first


def test_a_file_that_changes_while_sent_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    dataset = scan(folder)
    dataset.entries[0].path.write_bytes(b"shorter")

    async def drain() -> None:
        async for _ in async_tar_chunks(dataset):
            pass

    with pytest.raises(DatasetError, match="changed while it was being sent"):
        asyncio.run(drain())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        scan(tmp_path / "empty")


def test_every_problem_with_a_job_is_named_at_once() -> None:
    spec = JobSpec(
        "benchmark", {"model": "Digits", "runz": 3}, priority=500, memory_mb=0, window="24:00-06:00"
    )
    with pytest.raises(JobInputError) as caught:
        spec.request()
    problems = caught.value.problems
    assert any("model 'Digits' is not valid: use lower-case letters" in p for p in problems), problems
    assert any("takes no parameter 'runz'" in p for p in problems)
    assert any(p.startswith("priority should be less than or equal to 100 (got 500)") for p in problems)
    assert any(p.startswith("memory_mb should be greater than or equal to 1") for p in problems)
    assert any("use HH:MM-HH:MM" in p for p in problems)
    with pytest.raises(JobInputError, match="unknown job kind 'paint'; the kinds are batch-infer"):
        JobSpec("paint").request()
    with pytest.raises(JobInputError, match=r"^give exactly one of folder or dataset for the images$"):
        JobSpec("batch-infer", {"model": "digits-cnn"}).request()
    made = JobSpec("benchmark", {"model": "digits-cnn"}, threads=2, max_temperature_c=80).request("k-1")
    assert (
        made.resources.threads,
        made.resources.memory_mb,
        made.gates.max_temperature_c,
        made.idempotency_key,
    ) == (2, 256, 80, "k-1"), "what is not given keeps the contract's default"
