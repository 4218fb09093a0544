"""Resumable dataset uploads on the kit: the bytes that came stay across a dropped link and a
restart, a resume must start where the kit stands, and only a complete archive is unpacked."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.jobs.dataset_uploads import STALE_S, DatasetUploads
from agent.jobs.datasets import Datasets
from tests.integration.helpers import tar_archive


async def _body(data: bytes, then_drop: bool = False) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]
    if then_drop:
        raise ConnectionResetError("the link dropped")


def refusal(call: object) -> Refusal:
    with pytest.raises(Refusal) as refused:
        asyncio.run(call)  # type: ignore[arg-type]
    return refused.value


def test_an_upload_resumes_across_a_dropped_link_and_a_restart(tmp_path: Path) -> None:
    archive = tar_archive({"clip.mp4": bytes(range(256)) * 40})
    uploads = DatasetUploads(Datasets(tmp_path, max_bytes=1 << 20))
    assert uploads.start("clip", len(archive)).offset == 0
    with pytest.raises(ConnectionResetError):
        asyncio.run(uploads.append("clip", 0, _body(archive[:3000], then_drop=True)))
    again = DatasetUploads(Datasets(tmp_path, max_bytes=1 << 20))  # the agent restarted
    assert again.start("clip", len(archive)).offset == 3000  # what arrived is kept
    assert status_of(refusal(again.finish("clip"))) == 409  # not complete: not unpacked
    wrong = refusal(again.append("clip", 0, _body(archive)))
    assert (status_of(wrong), wrong.error) == (409, "offset_mismatch")
    assert asyncio.run(again.append("clip", 3000, _body(archive[3000:]))).offset == len(archive)
    info = asyncio.run(again.finish("clip"))
    assert (info.name, info.files) == ("clip", 1)
    assert (tmp_path / "datasets" / "clip" / "clip.mp4").read_bytes() == bytes(range(256)) * 40
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["clip"]  # no partial left
    assert status_of(refusal_sync(lambda: again.start("clip", len(archive)))) == 409  # it exists


def test_limits_are_judged_at_the_start_and_bytes_past_the_length_refused(tmp_path: Path) -> None:
    uploads = DatasetUploads(Datasets(tmp_path, max_bytes=10_000))
    assert status_of(refusal_sync(lambda: uploads.start("big", 10_001))) == 413
    uploads.start("small", 2000)
    longer = refusal(uploads.append("small", 0, _body(bytes(3000))))
    assert (status_of(longer), longer.error) == (409, "upload_too_long")


def refusal_sync(call: object) -> Refusal:
    with pytest.raises(Refusal) as refused:
        call()  # type: ignore[operator]
    return refused.value


def test_an_upload_abandoned_for_a_week_is_cleared_at_start(tmp_path: Path) -> None:
    DatasetUploads(Datasets(tmp_path, max_bytes=1 << 20)).start("old", 5000)
    DatasetUploads(Datasets(tmp_path, max_bytes=1 << 20)).start("new", 5000)
    week_ago = time.time() - STALE_S - 60
    for partial in (tmp_path / "datasets").glob(".partial-old.*"):
        os.utime(partial, (week_ago, week_ago))
    DatasetUploads(Datasets(tmp_path, max_bytes=1 << 20))
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [
        ".partial-new.json",
        ".partial-new.tar",
    ]
