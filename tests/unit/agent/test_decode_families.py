"""Each output family, decoded by kitfleet in process on the real field-style exports, against the
reference pipeline written from the exporter's layout (tests/field_models.py)."""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from agent.models.infer import run_batch, run_inference
from agent.wire import InferResult
from tests.field_models import FAMILIES, FIELD, SCENES, Box, agreement, field_manifest, reference

DETECTORS = [family for family in FAMILIES if not family.startswith("classifier")]


@cache
def session(family: str) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(FIELD / f"{family}.onnx"), options, providers=["CPUExecutionProvider"])


def scene(name: str) -> Image.Image:
    return Image.open(FIELD / name).convert("RGB")


def answers(result: InferResult | None) -> list[Box]:
    assert result is not None
    if result.detections is not None:
        return [Box(d.index, d.score, d.box) for d in result.detections]
    return [Box(c.index, c.score, None) for c in result.classes or []]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", SCENES)
def test_kitfleet_answers_as_the_exporters_pipeline(family: str, name: str) -> None:
    manifest = field_manifest(family)
    result, _ = run_inference(session(family), manifest, (FIELD / name).read_bytes(), "image/png", top_k=4)
    expected = reference(family, session(family), scene(name), top_k=4)
    assert expected, "the scene gives the reference something to find"
    assert agreement(answers(result), expected) == 1.0, (answers(result), expected)


@pytest.mark.parametrize("family", DETECTORS)
def test_each_detector_finds_the_three_squares_where_they_are_drawn(family: str) -> None:
    """The decoded boxes land on the drawn squares in the picture's own pixels (letterbox undone)."""
    import json

    truth = json.loads((FIELD / "scenes.json").read_text())["scene-b.png"]
    result, _ = run_inference(
        session(family), field_manifest(family), (FIELD / "scene-b.png").read_bytes(), None
    )
    assert result is not None
    assert result.detections is not None
    assert sorted(d.label for d in result.detections) == ["blue", "green", "red"]
    for thing in truth:
        [found] = [d for d in result.detections if d.label == thing["label"]]
        x1, y1, x2, y2 = found.box
        assert x1 < thing["cx"] < x2, (thing, found.box)
        assert y1 < thing["cy"] < y2, (thing, found.box)


@pytest.mark.parametrize(
    "family", ["yolov8-det", "end2end-det", "efficientnms-det", "classifier-tv", "classifier-probs"]
)
def test_a_batch_answers_as_one_image_at_a_time(family: str) -> None:
    """Models with a free batch dimension run the scenes in one session.run (batch jobs, streams)."""
    manifest = field_manifest(family)
    images = [scene(name) for name in (*SCENES, *SCENES)]
    batched = run_batch(session(family), manifest, images, top_k=4)
    for image, result in zip(images, batched, strict=True):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        alone, _ = run_inference(session(family), manifest, buffer.getvalue(), "image/png", top_k=4)
        assert agreement(answers(result), answers(alone), iou=0.999999, score_tolerance=1e-5) == 1.0


def test_yolov8_with_dynamic_height_and_width_runs_at_another_input_size() -> None:
    """The metadata's imgsz is a default: a manifest may take 256 for the same dynamic export."""
    manifest = field_manifest(
        "yolov8-det", input={"name": "images", "height": 256, "width": 256, "letterbox": True}
    )
    result, _ = run_inference(session("yolov8-det"), manifest, (FIELD / "scene-a.png").read_bytes(), None)
    assert result is not None
    assert sorted(d.label for d in result.detections or []) == ["blue", "green", "red"]


def test_a_tensor_gives_boxes_in_the_input_pixels() -> None:
    manifest = field_manifest("yolov8-det")
    canvas = np.full((320, 320, 3), 114, np.uint8)
    canvas[40:280] = np.asarray(scene("scene-a.png"))
    tensor = (canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    buffer = io.BytesIO()
    np.save(buffer, tensor)
    result, _ = run_inference(session("yolov8-det"), manifest, buffer.getvalue(), "application/x-npy")
    from_image, _ = run_inference(session("yolov8-det"), manifest, (FIELD / "scene-a.png").read_bytes(), None)
    assert result is not None
    assert from_image is not None
    shifted = [
        Box(d.index, d.score, (d.box[0], d.box[1] - 40, d.box[2], d.box[3] - 40))
        for d in result.detections or []
    ]
    assert agreement(shifted, answers(from_image), iou=0.99, score_tolerance=1e-4) == 1.0
