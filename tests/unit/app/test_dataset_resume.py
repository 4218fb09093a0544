"""A dataset's tar stream resumed from any byte is exactly the rest of the whole stream, so an
upload the link dropped continues where the kit stands (real files, real tarfile reading)."""

from __future__ import annotations

import asyncio
import io
import random
import tarfile
from pathlib import Path

from app.fleet.datasets import LocalDataset, async_tar_chunks, scan, scan_file


def stream(dataset: LocalDataset, start: int = 0) -> bytes:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in async_tar_chunks(dataset, None, start)])

    return asyncio.run(collect())


def test_every_resume_point_gives_the_rest_of_the_stream(tmp_path: Path) -> None:
    rng = random.Random(7)
    folder = tmp_path / "images"
    folder.mkdir()
    for n, size in enumerate([0, 1, 511, 512, 513, 5000, (1 << 20) + 7]):  # around block edges
        (folder / f"f{n}.png").write_bytes(rng.randbytes(size))
    video = tmp_path / "gate.mp4"
    video.write_bytes(rng.randbytes(300_001))
    for dataset in (scan(folder), scan_file(video)):
        whole = stream(dataset)
        assert len(whole) == dataset.size
        with tarfile.open(fileobj=io.BytesIO(whole)) as archive:
            assert len(archive.getnames()) == dataset.files
        edges = {0, 1, 511, 512, 513, 1024, dataset.size - 1024, dataset.size - 1, dataset.size}
        for start in sorted(edges | {rng.randrange(dataset.size) for _ in range(40)}):
            assert stream(dataset, start) == whole[start:], start


def test_a_file_is_named_after_itself_and_its_fingerprint(tmp_path: Path) -> None:
    video = tmp_path / "Gate Camera.MP4"
    video.write_bytes(b"x" * 10)
    first = scan_file(video)
    assert first.name.startswith("gate-camera-")
    assert scan_file(video).name == first.name  # the same file: found on the kit, not sent again
    video.write_bytes(b"y" * 11)
    assert scan_file(video).name != first.name
