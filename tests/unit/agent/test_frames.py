"""The stream job's reader on real videos through the real decoder (PyAV)."""

from __future__ import annotations

from pathlib import Path

from agent.jobs.kinds._frames import Frame, Reader
from tests.videos import write_video


def read_all(video: Path, realtime: bool) -> list[Frame]:
    reader = Reader({"kind": "file", "location": str(video)}, realtime, False)
    slot = reader.slot  # a file is read on the taking thread, as the job's loop does
    reader.start()
    frames = []
    while (frame := slot.take(5)) is not None or not slot.finished:
        if frame is not None:
            frames.append(frame)
    reader.join(5)
    assert reader.error is None
    return frames


def test_a_file_at_camera_pace_gives_each_frame_at_its_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", seconds=1.0, fps=10, size=64)
    frames = read_all(video, realtime=True)
    indices = [f.index for f in frames]  # a live source drops a frame the test was too slow to take
    assert indices == sorted(set(indices))
    assert indices[0] == 0
    assert indices[-1] == 9
    # decoded as a camera sends them: the last one no sooner than 0.9 s after the first
    assert frames[-1].ready - frames[0].ready >= 0.85
    assert all(f.image.size == (64, 64) for f in frames)


def test_a_file_read_flat_out_gives_every_frame_in_order(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", seconds=1.0, fps=10, size=64)
    frames = read_all(video, realtime=False)
    assert [f.index for f in frames] == list(range(10))
