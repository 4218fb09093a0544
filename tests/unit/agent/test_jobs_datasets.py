"""Dataset archives on the kit: disk reserve honoured, a racing upload of the same name refused."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.jobs.datasets import Datasets
from tests.integration.helpers import tar_archive


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


def test_an_upload_that_would_eat_the_disk_reserve_is_507_and_leaves_nothing(tmp_path: Path) -> None:
    # the whole disk in reserve: no room at all, however much other work frees meanwhile (a
    # reserve of the free space measured here let the upload in when a file was deleted between)
    datasets = Datasets(tmp_path, max_bytes=1 << 30, reserve_bytes=shutil.disk_usage(tmp_path).total)
    with pytest.raises(Refusal) as refused:
        asyncio.run(datasets.upload("cams", _body(tar_archive({"a.png": b"x" * 10_000}))))
    assert status_of(refused.value) == 507
    assert "reserve" in refused.value.message
    assert datasets.all() == []
    assert list(datasets.root.iterdir()) == []  # no archive or staging folder left behind


def test_a_racing_upload_of_the_same_name_is_409_and_the_first_copy_stays(tmp_path: Path) -> None:
    datasets = Datasets(tmp_path, max_bytes=1 << 30)
    first = tar_archive({"one.png": b"first"})
    asyncio.run(datasets.upload("cams", _body(first)))
    archive = tmp_path / "second.tar"
    archive.write_bytes(tar_archive({"two.png": b"second"}))
    with pytest.raises(Refusal) as refused:  # as if its exists-check ran before the first finished
        datasets._unpack(archive, datasets.root / "cams")
    assert status_of(refused.value) == 409
    assert (datasets.root / "cams" / "one.png").read_bytes() == b"first"
    assert not (datasets.root / "cams" / "two.png").exists()
    assert [p.name for p in datasets.root.iterdir()] == ["cams"]
