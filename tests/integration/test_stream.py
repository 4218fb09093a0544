"""Stream jobs on a real agent: real FFmpeg decoding (PyAV), the real bundled detector, live SSE.

Most tests share one agent (module scope) to stay quick; the restart test has its own,
since it kills it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image

from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.stream import LiveEvent, StreamOptions, async_snapshot, async_start, async_watch
from resources import images_dir, models_dir
from tests.integration.conftest import AgentFactory, free_port
from tests.integration.helpers import kitfleet, pair, raw_client
from tests.integration.test_jobs_api import FINISHED, refused, wait
from tests.videos import write_video

DETECTOR = "shapes-yolo"
LABELS = {"circle", "square", "triangle"}


@dataclass
class Kit:
    agent: LocalAgent
    token: str
    data: Path  # the kit's data root: sources go here

    def client(self) -> httpx.Client:
        return raw_client(self.agent, self.token)


def deploy_detector(client: httpx.Client) -> None:
    manifest = json.loads((models_dir() / f"{DETECTOR}-fp32.manifest.json").read_text())
    upload = client.post("/v1/uploads", json={"manifest": manifest, "activate": True}).json()
    client.patch(
        f"/v1/uploads/{upload['upload_id']}",
        headers={"Upload-Offset": "0"},
        content=(models_dir() / f"{DETECTOR}-fp32.onnx").read_bytes(),
    ).raise_for_status()
    client.post(f"/v1/uploads/{upload['upload_id']}/commit").raise_for_status()


def start_kit(agent: LocalAgent) -> Kit:
    agent.data_dir.mkdir(parents=True, exist_ok=True)
    # the test's cameras are on loopback, which a kit refuses unless told (allowed_stream_hosts)
    (agent.data_dir / "agent.json").write_text(
        json.dumps({"jobs_threads": 4, "allowed_stream_hosts": ["127.0.0.1"]})
    )
    agent.start()
    kit = Kit(agent, pair(agent), agent.data_dir / "datasets")
    with kit.client() as client:
        deploy_detector(client)
    return kit


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    agent = LocalAgent(tmp_path_factory.mktemp("stream") / "agent", "stream-kit", mdns=False)
    try:
        yield start_kit(agent)
    finally:
        agent.stop()


def submit_stream(client: httpx.Client, source: str, **params: Any) -> str:
    extra = params.pop("job", {})
    response = client.post(
        "/v1/jobs",
        json={"kind": "stream", "params": {"model": DETECTOR, "source": source, **params}, **extra},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["job_id"])


def wait_for(client: httpx.Client, job_id: str, check: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        if check(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


def processing(job: dict[str, Any]) -> bool:
    assert job["state"] not in FINISHED, job
    return bool(job["state"] == "running" and job["progress"]["done"] > 0)


def workers_of(data_dir: Path, spares: bool = False) -> list[int]:
    """A kit's job workers; with `spares`, also the idle one it keeps ready for the next job."""
    return [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if "agent.jobs.worker" in (p.info["cmdline"] or [])
        and any(str(data_dir) in arg for arg in p.info["cmdline"] or [])
        and (spares or "--spare" not in p.info["cmdline"])
    ]


def jsonl(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    text = client.get(f"/v1/jobs/{job_id}/results/results.jsonl").text
    return [json.loads(line) for line in text.splitlines()]


def test_a_video_goes_through_the_real_decoder_and_model(kit: Kit) -> None:
    write_video(kit.data / "clip.mp4", seconds=4, fps=15)
    with kit.client() as client:
        job_id = submit_stream(client, "clip.mp4", realtime=False, interval_s=1)
        job = wait(client, job_id)
        assert job["state"] == "done", job
        result = job["result"]
        assert result["frames_in"] == result["processed"] == 60
        assert result["dropped"] == 0
        assert set(result["totals"]) == LABELS  # the three kinds of shape in the video, and no other
        assert result["latency_ms"]["p50"] > 0
        assert result["latency_ms"]["p99"] >= result["latency_ms"]["p50"]
        rows = jsonl(client, job_id)
        assert len(rows) == 60
        assert [r["seq"] for r in rows] == list(range(1, 61))
        boxes = [d["box"] for r in rows for d in r["detections"]]
        assert all(0 <= v <= 192 for box in boxes for v in box)  # in the video's pixels, not the model's
        counts = client.get(f"/v1/jobs/{job_id}/results/results.csv").text.splitlines()
        assert counts[0] == "start,end,frames,label,detections,max_per_frame"
        assert {line.split(",")[3] for line in counts[1:]} == LABELS
        assert sum(int(line.split(",")[4]) for line in counts[1:]) == sum(result["totals"].values())
        names = client.get(f"/v1/jobs/{job_id}/snapshots").json()
        assert 1 <= len(names) == result["snapshots"]
        kept = Image.open(io.BytesIO(client.get(f"/v1/jobs/{job_id}/snapshots/{names[0]}").content))
        assert kept.format == "JPEG"
        assert kept.width >= 192
        latest = client.get(f"/v1/jobs/{job_id}/snapshot")
        assert latest.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(latest.content)).size == kept.size


def test_keep_bounds_what_is_stored(kit: Kit) -> None:
    with kit.client() as client:
        job_id = submit_stream(client, "clip.mp4", realtime=False, keep=["counts"])
        assert wait(client, job_id)["state"] == "done"
        files = {f["name"] for f in client.get(f"/v1/jobs/{job_id}/results").json()["files"]}
        assert files == {"results.csv", "result.json"}
        assert client.get(f"/v1/jobs/{job_id}/snapshots").json() == []


def test_a_source_faster_than_inference_drops_frames_and_a_slower_one_none(kit: Kit) -> None:
    write_video(kit.data / "fast.mp4", seconds=3, fps=30)
    write_video(kit.data / "slow.mp4", seconds=2, fps=5)
    with kit.client() as client:
        fast = submit_stream(client, "fast.mp4", fps=3)  # the model may take 3 frames a second
        slow = submit_stream(client, "slow.mp4")
        fast_job, slow_job = wait(client, fast), wait(client, slow)
    result = fast_job["result"]
    assert fast_job["state"] == "done"
    assert result["frames_in"] == 90
    assert result["dropped"] > 0
    # every frame was either processed or replaced by a newer one: none waited in a queue
    assert result["processed"] + result["dropped"] == result["frames_in"]
    assert result["processed"] < 30
    assert slow_job["state"] == "done"
    assert slow_job["result"]["processed"] == slow_job["result"]["frames_in"] == 10
    assert slow_job["result"]["dropped"] == 0


def test_a_watched_folder_gets_each_new_image(kit: Kit) -> None:
    folder = kit.data / "drop"
    folder.mkdir()
    with kit.client() as client:
        job_id = submit_stream(client, "drop", realtime=False)
        wait_for(client, job_id, lambda j: j["state"] == "running")
        for n, name in enumerate(["shapes-1.png", "shapes-2.png", "shapes-3.png"], 1):
            shutil.copy(images_dir() / name, folder / f".{name}.part")  # written, then renamed in
            (folder / f".{name}.part").rename(folder / name)
            wait_for(client, job_id, lambda j, n=n: j["progress"]["done"] >= n)
        (folder / "broken.png").write_bytes(b"\x89PNG not really")
        truth = json.loads((images_dir() / "shapes.json").read_text())
        deadline = time.monotonic() + 10
        while len(rows := jsonl(client, job_id)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r["file"] for r in rows] == ["shapes-1.png", "shapes-2.png", "shapes-3.png"]
        for row in rows:
            wanted = {s["label"] for s in truth[row["file"]]}
            assert wanted <= {d["label"] for d in row["detections"]}, row
        job = client.post(f"/v1/jobs/{job_id}/cancel").json()
        assert job["state"] == "cancelled"
        assert job["progress"]["done"] == 3  # the broken image was skipped, not a frame
    assert not workers_of(kit.agent.data_dir)


def test_a_live_viewer_gets_frames_stats_and_the_end(kit: Kit, fleet: Fleet) -> None:
    write_video(kit.data / "live.mp4", seconds=3, fps=15)
    kit_row = asyncio.run(fleet.async_adopt(kit.agent.address, kit.agent.pair_code()))

    async def follow() -> tuple[str, list[LiveEvent], bytes]:
        job = await async_start(fleet, kit_row, StreamOptions(model=DETECTOR, source="live.mp4"))
        events = [event async for event in async_watch(fleet, kit_row, job.job_id)]
        return job.job_id, events, await async_snapshot(fleet, kit_row, job.job_id)

    job_id, events, jpeg = asyncio.run(follow())
    frames = [e.data for e in events if e.kind == "frame"]
    stats = [e.data for e in events if e.kind == "stats"]
    assert events[-1].kind == "end"
    assert events[-1].data["state"] == "done"
    assert frames
    assert all(f["detections"] for f in frames)
    assert {d["label"] for f in frames for d in f["detections"]} <= LABELS
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs))  # in order, none twice
    assert len(frames) + stats[-1]["skipped"] == 45  # each frame sent, or counted as missed
    running = [s for s in stats if s["state"] == "running" and s.get("processed")]
    assert running
    assert all(s["processed_fps"] > 0 and s["latency_ms"]["p50"] > 0 for s in running)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    with kit.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "done"


def test_viewers_that_hang_up_free_their_place(kit: Kit) -> None:
    with kit.client() as client:
        job_id = submit_stream(client, "live.mp4", loop=True)
        wait_for(client, job_id, processing)
        for _ in range(20):  # more than the kit's limit of viewers at once
            with client.stream("GET", f"/v1/jobs/{job_id}/live") as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                assert any(line.startswith("event: frame") for line in lines)
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelled"
        refused(client.get(f"/v1/jobs/{'0' * 24}/live"), 404, "job_not_found")


def test_the_cli_starts_watches_and_stops_a_stream(kit: Kit, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = kit.agent.pair_code()
    assert kitfleet(home, "adopt", kit.agent.address, "--code", code).returncode == 0
    started = kitfleet(
        home,
        "stream",
        "start",
        "stream-kit",
        "--model",
        DETECTOR,
        "--source",
        "live.mp4",
        "--fps",
        "10",
        "--json",
    )
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    watched = kitfleet(home, "stream", "watch", "stream-kit", job_id[:12])  # as the screens show it
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert any(" fps (source " in line and "latency p50" in line for line in lines[:-1])
    assert f"job {job_id} done" in lines  # then its summary, labelled
    [seen] = [line for line in lines if line.startswith("  detections per label: ")]
    assert all(f"{label} x" in seen for label in LABELS), seen
    looping = json.loads(
        kitfleet(
            home,
            "stream",
            "start",
            "stream-kit",
            "--model",
            DETECTOR,
            "--source",
            "live.mp4",
            "--loop",
            "--json",
        ).stdout
    )["job_id"]
    with kit.client() as client:
        wait_for(client, looping, processing)
    stopped = kitfleet(home, "stream", "stop", "stream-kit", looping[:8])  # any unique prefix of 6+
    assert stopped.returncode == 0
    assert "cancelled" in stopped.stdout
    bad = kitfleet(home, "stream", "start", "stream-kit", "--model", DETECTOR, "--source", "/etc/passwd")
    assert bad.returncode == 1
    assert "outside the folders jobs may read" in bad.stderr


def test_bad_sources_fail_clearly_and_the_agent_stays_up(kit: Kit) -> None:
    (kit.data / "corrupt.mp4").write_bytes(os.urandom(64 * 1024))
    (kit.data / "notes.mp4").write_text("not a video at all\n" * 100)
    closed = free_port()
    expected = {
        "/dev/video77": "no camera at /dev/video77",
        f"rtsp://127.0.0.1:{closed}/cam": "cannot read the stream at 127.0.0.1",
        f"http://127.0.0.1:{closed}/cam.mjpg": "cannot read the stream at 127.0.0.1",
        "corrupt.mp4": "corrupt.mp4 is not a video FFmpeg can read",
        "notes.mp4": "notes.mp4 is not a video FFmpeg can read",
    }
    with kit.client() as client:
        post = client.post
        for source, error in (
            ("/etc/passwd", "path_outside_data_roots"),
            ("../../x.mp4", "path_outside_data_roots"),
            ("missing.mp4", "source_not_found"),
            ("ftp://127.0.0.1/x", "bad_source"),
            ("/dev/sda", "bad_source"),
            ("a b.mp4", "bad_source"),
        ):
            params = {"model": DETECTOR, "source": source}
            refused(post("/v1/jobs", json={"kind": "stream", "params": params}), 422, error)
        refused(
            post(
                "/v1/jobs",
                json={
                    "kind": "stream",
                    "params": {"model": DETECTOR, "source": "clip.mp4", "keep": ["everything"]},
                },
            ),
            422,
        )
        jobs = {
            submit_stream(client, source, job={"max_retries": 3}): words for source, words in expected.items()
        }
        for job_id, words in jobs.items():
            job = wait(client, job_id)
            assert job["state"] == "failed", job
            assert words in job["error"], job
            assert job["attempts"] == 1  # a bad source is not retried
        assert kit.agent.health()["status"] == "ok"
        good = submit_stream(client, "clip.mp4", realtime=False)
        assert wait(client, good)["state"] == "done"


def test_a_stream_survives_kill_9_of_the_agent(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("crash", mdns=False)
    agent.stop()
    kit = start_kit(agent)
    write_video(kit.data / "loop.mp4", seconds=2, fps=15)
    with kit.client() as client:
        resumes = submit_stream(client, "loop.mp4", loop=True, job={"max_retries": 2})
        ends = submit_stream(client, "loop.mp4", loop=True, job={"max_retries": 0})
        for job_id in (resumes, ends):
            wait_for(client, job_id, processing)
    agent.kill()
    deadline = time.monotonic() + 10
    while workers_of(agent.data_dir, spares=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers_of(agent.data_dir, spares=True), "workers die with their agent"
    agent.start()
    with kit.client() as client:
        job = wait_for(client, resumes, lambda j: j["attempts"] == 2 and processing(j))
        assert "cut short" in (job["error"] or "")
        interrupted = client.get(f"/v1/jobs/{ends}").json()
        assert interrupted["state"] == "interrupted"
        assert "no retries left" in interrupted["error"]
        with client.stream("GET", f"/v1/jobs/{resumes}/live") as response:
            for line in response.iter_lines():
                if line.startswith("data:") and '"attempt"' in line and '"state"' in line:
                    assert json.loads(line[5:])["attempt"] == 2
                    break
        assert client.post(f"/v1/jobs/{resumes}/cancel").json()["state"] == "cancelled"
    assert not workers_of(agent.data_dir)
