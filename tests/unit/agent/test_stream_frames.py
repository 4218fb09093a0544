"""The stream kind in this process on real videos, the real detector and real FFmpeg: a frame
source that breaks mid-stream fails the job with the error (never ends it done with half the
frames), and decoding stays within the job's threads."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.jobs.errors import JobFailed
from agent.jobs.kinds import _frames, stream
from agent.jobs.kinds._model import load
from agent.jobs.report import Reporter
from agent.jobs.sources import stream_source
from agent.toolkit.sessions import open_session
from agent.wire import Manifest, StreamParams
from resources import images_dir, models_dir
from tests.videos import write_video

DETECTOR = "shapes-yolo-fp32"


def spec_for(source: str, root: Path, threads: int = 1, **params: Any) -> dict[str, Any]:
    """What the agent's Preparer hands the worker for a stream job."""
    model = models_dir() / f"{DETECTOR}.onnx"
    manifest = Manifest.model_validate_json(model.with_name(f"{DETECTOR}.manifest.json").read_bytes())
    typed = StreamParams.model_validate({"model": "shapes-yolo", "source": source, **params})
    return {
        "kind": "stream",
        "params": typed.model_dump(mode="json"),
        "threads": threads,
        "max_result_bytes": 1 << 30,
        "model": {"manifest": manifest.model_dump(mode="json"), "path": str(model)},
        "source": stream_source(source, [root], manifest, []),
    }


def run(spec: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    return stream.run(spec, Reporter(io.StringIO(), results, spec["max_result_bytes"]))


class BreakingFrames:
    """`_frames.Frame` that raises, as a decoder bug would, once `after` frames were made; and
    notes the native threads of this process (FFmpeg's among them) as each frame is made."""

    def __init__(self, after: int | None) -> None:
        self.after, self.made, self.native = after, 0, [0]
        self.real = _frames.Frame

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.made += 1
        self.native.append(native_threads())
        if self.after is not None and self.made > self.after:
            raise RuntimeError("the decoder tripped over frame data")
        return self.real(*args, **kwargs)


def native_threads() -> int:
    return len(os.listdir("/proc/self/task")) - threading.active_count()


@pytest.mark.parametrize("realtime", [False, True])
def test_a_video_whose_decoding_breaks_fails_the_job_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, realtime: bool
) -> None:
    write_video(tmp_path / "clip.mp4", seconds=1, fps=15)
    monkeypatch.setattr(_frames, "Frame", BreakingFrames(after=4))
    with pytest.raises(JobFailed) as failed:
        run(spec_for("clip.mp4", tmp_path, realtime=realtime), tmp_path)
    # the technician reads what went wrong and where, not the exception's class name (issue 20)
    assert "failed: the decoder tripped over frame data" in str(failed.value)
    assert "clip.mp4" in str(failed.value)
    assert not (tmp_path / "results" / "result.json").exists(), "no summary of a job that failed"


def test_a_watched_folder_whose_reading_breaks_fails_the_job_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is read on its own thread: an error there ends the job failed, too."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for name in ("shapes-1.png", "shapes-2.png", "shapes-3.png"):
        shutil.copy(images_dir() / name, folder / name)
    monkeypatch.setattr(_frames, "Frame", BreakingFrames(after=2))
    with pytest.raises(JobFailed) as failed:
        run(spec_for("drop", tmp_path, realtime=False), tmp_path)
    assert "drop failed: the decoder tripped over frame data" in str(failed.value)


def test_decoding_a_file_flat_out_takes_no_more_threads_than_the_job_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg's default would start a decoding thread per core (and more): a one-thread job
    decodes on its own thread and nowhere else."""
    write_video(tmp_path / "clip.mp4", seconds=1, fps=15)
    frames = BreakingFrames(after=None)
    monkeypatch.setattr(_frames, "Frame", frames)
    open_session(models_dir() / f"{DETECTOR}.onnx", 1)  # ONNX Runtime's own thread, made once
    before = native_threads()
    summary = run(spec_for("clip.mp4", tmp_path, threads=1, realtime=False), tmp_path)
    assert summary["processed"] == frames.made == 15
    assert max(frames.native) - before <= 0, (before, frames.native)
    assert json.loads((tmp_path / "results" / "result.json").read_text())["processed"] == 15


def test_a_watched_folder_reads_a_new_image_whose_time_is_not_later(tmp_path: Path) -> None:
    """A file whose modification time is not after the last one read (the same clock tick, a
    clock set back, a copy that kept its time) is still new: each image is read once."""
    folder = tmp_path / "drop"
    folder.mkdir()
    spec = spec_for("drop", tmp_path, realtime=False, keep=["detections"])
    results = tmp_path / "results"
    results.mkdir()
    report = Reporter(io.StringIO(), results, spec["max_result_bytes"])
    manifest, session = load(spec, report)
    job = stream.StreamJob(spec, report, manifest, session)
    runner = threading.Thread(target=job.run)
    shutil.copy(images_dir() / "shapes-2.png", folder / "b.png")
    runner.start()
    try:
        _until(lambda: job.processed == 1)
        stamp = (folder / "b.png").stat().st_mtime_ns
        for name, source in (("a.png", "shapes-1.png"), ("c.png", "shapes-3.png")):
            shutil.copy(images_dir() / source, folder / name)
            os.utime(folder / name, ns=(stamp - 10**9, stamp - 10**9))  # a second before b.png
        _until(lambda: job.processed == 3)
        (folder / "b.png").write_bytes((images_dir() / "shapes-3.png").read_bytes())  # rewritten
        _until(lambda: job.processed == 4)
    finally:
        job.reader.stop.set()
        runner.join(30)
    rows = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["b.png", "a.png", "c.png", "b.png"]


def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the folder watcher did not get there"
        time.sleep(0.02)
