"""A stream job with a field detector of a new family (the YOLOv8-style export, letterboxed, with
no manifest but the one inspection infers) decodes every frame as /infer and the exporter's own
pipeline do: boxes in the video frame's pixels, not the model input's. The video is portrait
(240x360), so the letterbox has a non-integer gain and side bars; a mapping that forgot either
would put every box in the wrong place."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from agent.wire import Manifest
from app.fleet.inspection import inspect_model
from tests.field_models import FIELD, Box, agreement, reference
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_field_models import boxes, upload
from tests.integration.test_jobs_api import wait

FAMILY = "yolov8-det"
SCENE = "scene-b.png"  # 240x360 portrait: letterbox gain 8/9, 53 px bars left and right
FRAMES, FPS, STEP = 24, 12, 1  # two seconds; the squares glide right one pixel a frame


def write_clip(path: Path) -> Path:
    """The scene sliding sideways, as H.264 (what a camera or a recorder writes)."""
    import av

    scene = np.asarray(Image.open(FIELD / SCENE).convert("RGB"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = scene.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "bf": "0"}
        for n in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(scene, n * STEP, axis=1).copy(), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decoded_frames(path: Path) -> list[Image.Image]:
    """The frames as FFmpeg gives them, which is what the job sees (not the pictures encoded)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def inspected(model: Path) -> Manifest:
    """The manifest `kitfleet deploy` would send for the plain file: nothing written by hand."""
    inspection = inspect_model(model, golden=True)
    assert inspection.family == "yolov8"
    assert inspection.manifest.input.letterbox
    return inspection.manifest


def recorded(row: dict[str, Any]) -> list[Box]:
    return [Box(d["index"], d["score"], tuple(d["box"])) for d in row["detections"]]


def iou(a: list[float] | tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def test_a_stream_decodes_a_letterboxed_family_as_infer_and_the_reference_do(
    start_agent: AgentFactory,
) -> None:
    agent = start_agent("stream-field", mdns=False)
    clip = write_clip(agent.data_dir / "datasets" / "slide.mp4")
    frames = decoded_frames(clip)
    assert len(frames) == FRAMES
    assert frames[0].size == (240, 360)
    manifest = inspected(FIELD / f"{FAMILY}.onnx")
    session = ort.InferenceSession(str(FIELD / f"{FAMILY}.onnx"), providers=["CPUExecutionProvider"])
    truth = json.loads((FIELD / "scenes.json").read_text())[SCENE]
    with raw_client(agent, pair(agent)) as client:
        committed = upload(client, FIELD / f"{FAMILY}.onnx", manifest)
        assert committed.status_code == 200, committed.text
        submitted = client.post(
            "/v1/jobs",
            json={"kind": "stream", "params": {"model": FAMILY, "source": "slide.mp4", "realtime": False}},
        )
        assert submitted.status_code == 201, submitted.text
        job = wait(client, submitted.json()["job_id"])
        assert job["state"] == "done", job
        assert job["result"]["frames_in"] == job["result"]["processed"] == FRAMES
        text = client.get(f"/v1/jobs/{job['job_id']}/results/results.jsonl").text
        rows = [json.loads(line) for line in text.splitlines()]
        labels = [d["label"] for row in rows for d in row["detections"]]
        assert job["result"]["totals"] == {label: labels.count(label) for label in set(labels)}
        assert [row["frame"] for row in rows] == list(range(FRAMES))  # every frame found something
        for row in rows:
            n = row["frame"]
            answer = client.post(
                f"/v1/models/{FAMILY}/infer",
                content=png(frames[n]),
                headers={"Content-Type": "image/png"},
            )
            assert answer.status_code == 200, answer.text
            want = reference(FAMILY, session, frames[n], thresholds=manifest)
            assert {box.index for box in want} == {0, 1, 2}, (n, want)
            # the job's record rounds scores to 3 places and boxes to 0.1 px
            assert agreement(recorded(row), want) == 1.0, (n, row, want)
            assert agreement(boxes(answer.json()), want) == 1.0, (n, answer.json(), want)
            assert agreement(recorded(row), boxes(answer.json())) == 1.0, (n, row, answer.json())
            # and over the squares as they were drawn, in the frame's own pixels (the tiny
            # hand-set detector's boxes are coarse; a box off by the bars or the gain misses)
            for square in truth:
                cx, cy, half = (square["cx"] + n * STEP) % 240, square["cy"], square["size"] / 2
                drawn = (cx - half, cy - half, cx + half, cy + half)
                found = [d["box"] for d in row["detections"] if d["label"] == square["label"]]
                assert max(iou(box, drawn) for box in found) >= 0.45, (n, square, found)
