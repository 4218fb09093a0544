"""Streams as a first-time technician meets them (issue 20 item 7), through the real `kitfleet`
CLI and a real agent: a video on the laptop is sent and streamed, a folder is a backlog, a looped
video keeps counting and says how often it looped, and a stopped stream leaves its summary."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.fleet.datasets import LocalDataset, async_tar_chunks, scan_file
from app.fleet.localagent import LocalAgent
from resources import images_dir
from tests.integration.helpers import kitfleet
from tests.integration.test_stream import DETECTOR, LABELS, Kit, start_kit, wait_for
from tests.videos import write_video


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    agent = LocalAgent(tmp_path_factory.mktemp("friction") / "agent", "stream-kit", mdns=False)
    try:
        yield start_kit(agent)
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def home(kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("laptop") / "home"
    adopted = kitfleet(home, "adopt", kit.agent.address, "--code", kit.agent.pair_code())
    assert adopted.returncode == 0, adopted.stderr
    return home


def start(home: Path, source: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return kitfleet(home, "stream", "start", "stream-kit", "--model", DETECTOR, "--source", source, *flags)


def test_a_folder_is_a_backlog_every_image_processed(kit: Kit, home: Path) -> None:
    folder = kit.data / "backlog"
    folder.mkdir()
    shapes = sorted(images_dir().glob("shapes-*.png"))
    for n in range(10):
        shutil.copy(shapes[n % len(shapes)], folder / f"img-{n:02d}.png")
    started = start(home, "backlog", "--json")
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    with kit.client() as client:
        wait_for(client, job_id, lambda j: j["progress"]["done"] >= 10)
    stopped = kitfleet(home, "stream", "stop", "stream-kit", job_id)
    assert stopped.returncode == 0, stopped.stderr
    # before: 2 of 10 processed, "dropped 8", and "(no result summary)" after a stop
    assert "frames: 10 read, 10 processed, 0 dropped (stopped on request)" in stopped.stdout
    assert "detections per label: " in stopped.stdout
    with kit.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "cancelled"
    assert job["result"]["processed"] == 10
    assert job["result"]["stopped"] is True
    assert set(job["result"]["totals"]) <= LABELS


def test_a_live_folder_is_asked_for_by_flag(kit: Kit, home: Path) -> None:
    (kit.data / "camera").mkdir()
    started = start(home, "camera", "--live", "--json")
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)
    assert job["request"]["params"]["live"] is True
    stopped = kitfleet(home, "stream", "stop", "stream-kit", job["job_id"])
    assert stopped.returncode == 0, stopped.stderr


def test_a_looped_video_keeps_counting_and_shows_its_loops(kit: Kit, home: Path) -> None:
    write_video(kit.data / "short.mp4", seconds=1, fps=10)
    started = start(home, "short.mp4", "--loop", "--every-frame", "--json")
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    watch = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(home), "stream", "watch", "stream-kit", job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        with kit.client() as client:
            wait_for(client, job_id, lambda j: j["progress"]["done"] >= 35)  # three passes and more
            time.sleep(1.5)  # a stats line or two with the loops in it (one a second)
        stopped = kitfleet(home, "stream", "stop", "stream-kit", job_id, "--json")
        watched, errors = watch.communicate(timeout=60)
    finally:
        watch.kill()
    assert stopped.returncode == 0, stopped.stderr
    result = json.loads(stopped.stdout)["result"]
    assert result["loops"] >= 3
    assert result["processed"] >= 35
    # every frame of the video holds shapes: the totals grew over every pass, none was reset
    assert sum(result["totals"].values()) >= result["processed"]
    lines = watched.splitlines()
    assert any("looped " in line and "x | seen: " in line for line in lines), watched
    seen = [line.rsplit("| seen: ", 1)[1] for line in lines if "| seen: " in line]
    assert any(label in seen[-1] for label in LABELS), seen  # "circle x12, ...", not "| 0 1  9 1"
    assert f"job {job_id} cancelled" in watched, errors
    assert ", video looped " in watched
    assert "detections per label: " in watched


def test_a_video_on_this_computer_is_sent_and_streamed(kit: Kit, home: Path, tmp_path: Path) -> None:
    laptop = tmp_path / "Videos"
    laptop.mkdir()
    video = write_video(laptop / "gate.mp4", seconds=1, fps=10)
    refused = start(home, str(video))
    assert refused.returncode == 1
    assert "--upload" in refused.stderr, refused.stderr  # before: only "outside the folders jobs may read"
    assert "is on this computer" in refused.stderr
    sent = start(home, str(video), "--upload", "--json", "--every-frame")
    assert sent.returncode == 0, sent.stderr
    assert "uploading gate-" in sent.stderr
    assert "100%" in sent.stderr
    job = json.loads(sent.stdout)
    assert job["request"]["params"]["source"] == "gate.mp4"
    dataset = job["request"]["params"]["dataset"]
    watched = kitfleet(home, "stream", "watch", "stream-kit", job["job_id"])
    assert watched.returncode == 0, watched.stderr
    assert "frames: 10 read, 10 processed, 0 dropped (source ended)" in watched.stdout
    with kit.client() as client:
        assert dataset in {d["name"] for d in client.get("/v1/datasets").json()}
    again = start(home, str(video), "--upload", "--json", "--loop")
    assert again.returncode == 0, again.stderr
    assert "uploading" not in again.stderr  # the kit has it from the first send
    assert kitfleet(home, "stream", "stop", "stream-kit", json.loads(again.stdout)["job_id"]).returncode == 0


def test_on_a_terminal_sending_is_asked_first(kit: Kit, home: Path, tmp_path: Path) -> None:
    images = tmp_path / "pictures"
    images.mkdir()
    for shape in sorted(images_dir().glob("shapes-*.png")):
        shutil.copy(shape, images / shape.name)
    answer, output = _at_a_terminal(home, ["--source", str(images), "--json"], "y\n")
    count = len(list(images.iterdir()))
    assert f"is on this computer, not on stream-kit. Send the folder of {count} images" in output
    assert "uploading pictures-" in output
    declined, said = _at_a_terminal(home, ["--source", str(images)], "n\n")
    assert declined != 0
    assert "add --upload" in said
    assert answer == 0, output


def _at_a_terminal(home: Path, args: list[str], reply: str) -> tuple[int, str]:
    """Run `stream start` with a pseudo-terminal as stdin and stderr, answering its question."""
    leader, follower = pty.openpty()
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    command = [sys.executable, "-m", "app", "--home", str(home), "stream", "start", "stream-kit"]
    proc = subprocess.Popen(
        [*command, "--model", DETECTOR, *args],
        stdin=follower,
        stderr=follower,
        stdout=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    said, replied = b"", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the process closed the terminal
                break
            said += chunk
        if not replied and b"[y/N]" in said:
            os.write(leader, reply.encode())
            replied = True
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    assert proc.stdout is not None
    printed = proc.stdout.read()
    if code == 0:  # started with --json: stop the job it printed
        job_id = json.loads(printed)["job_id"]
        assert kitfleet(home, "stream", "stop", "stream-kit", job_id).returncode == 0
    return code, said.decode(errors="replace")


def test_a_dropped_upload_resumes_where_the_kit_stands(kit: Kit, home: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "yard.mp4", seconds=2, fps=10)
    dataset = scan_file(video)
    whole = asyncio.run(_tar(dataset))
    half = len(whole) // 2
    with kit.client() as client:  # a first send that the link dropped half way
        started = client.post(f"/v1/datasets/{dataset.name}/upload", json={"size": dataset.size})
        assert started.json()["offset"] == 0, started.text
        client.patch(
            f"/v1/datasets/{dataset.name}/upload", headers={"Upload-Offset": "0"}, content=whole[:half]
        ).raise_for_status()
    sent = start(home, str(video), "--upload", "--json", "--every-frame")
    assert sent.returncode == 0, sent.stderr
    shown = [
        int(line.split("% of")[0].rsplit(" ", 1)[1]) for line in sent.stderr.splitlines() if "% of" in line
    ]
    assert shown[0] >= 50, sent.stderr  # the first half was not sent again
    assert shown[-1] == 100
    job = json.loads(sent.stdout)
    assert job["request"]["params"]["dataset"] == dataset.name
    watched = kitfleet(home, "stream", "watch", "stream-kit", job["job_id"])
    assert "frames: 20 read, 20 processed, 0 dropped (source ended)" in watched.stdout, watched.stdout


def test_an_upload_too_large_for_the_kit_is_refused_before_a_byte_goes(home: Path, tmp_path: Path) -> None:
    huge = tmp_path / "night.mp4"
    with huge.open("wb") as handle:
        try:
            handle.truncate(1 << 40)  # a sparse terabyte: nothing is written, nothing can be sent
        except OSError:
            pytest.skip("this file system cannot hold a sparse terabyte")
    refused = start(home, str(huge), "--upload")
    assert refused.returncode == 1
    assert "uploading" not in refused.stderr
    assert "dataset_too_large" in refused.stderr, refused.stderr


async def _tar(dataset: LocalDataset) -> bytes:
    return b"".join([chunk async for chunk in async_tar_chunks(dataset)])
