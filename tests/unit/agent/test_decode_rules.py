"""The rules each family's decoder follows, on outputs written by hand: class-aware NMS for
YOLOv8 (as Ultralytics by default), no NMS inside end-to-end outputs, TF SSD's yxyx normalised
boxes and background class, counts that cut padded rows, and the same answers from numpy's and
plain Python's paths."""

from __future__ import annotations

import numpy as np
import pytest

from agent.models import decode
from agent.toolkit.images import Placement
from tests.field_models import field_manifest

INPUT = Placement.identity(320, 320)


def yolov8_output(rows: list[tuple[float, float, float, float, int, float]], classes: int = 3) -> np.ndarray:
    """[1, 4 + classes, boxes] from (cx, cy, w, h, class, score) rows."""
    output = np.zeros((1, 4 + classes, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        output[0, :4, i] = [cx, cy, w, h]
        output[0, 4 + cls, i] = score
    return output


def test_yolov8_suppresses_within_a_class_not_across_classes() -> None:
    output = yolov8_output(
        [(100, 100, 40, 40, 0, 0.9), (102, 101, 40, 40, 0, 0.8), (101, 100, 40, 40, 1, 0.7)]
    )
    [found] = decode.detections(field_manifest("yolov8-det"), {"output0": output}, [INPUT])
    assert [(d.label, round(d.score, 3)) for d in found] == [("red", 0.9), ("green", 0.7)]
    assert found[0].box == pytest.approx((80, 80, 120, 120))


def test_yolov8_numpy_and_python_paths_agree() -> None:
    """Over 64 candidates numpy decodes; below, plain Python: the same answers."""
    rng = np.random.default_rng(5)
    rows = [
        (
            *(100 + rng.random(2) * 60),
            *(40 + rng.random(2) * 40),
            int(rng.integers(3)),
            0.3 + 0.7 * rng.random(),
        )
        for _ in range(120)
    ]
    manifest = field_manifest(
        "yolov8-det", detection={"format": "yolov8", "iou_threshold": 0.5, "max_detections": 1000}
    )
    [many] = decode.detections(
        manifest, {"output0": yolov8_output(rows)}, [Placement(1.5, 1.5, 10, 20, 400, 300)]
    )
    kept = {(d.index, round(d.score, 6)) for d in many}
    few_rows = [row for row in rows if (row[4], round(np.float32(row[5]).item(), 6)) in kept]
    assert len(few_rows) <= 64
    [few] = decode.detections(
        manifest, {"output0": yolov8_output(few_rows)}, [Placement(1.5, 1.5, 10, 20, 400, 300)]
    )
    assert [(d.index, d.score) for d in many] == [(d.index, d.score) for d in few]
    assert np.allclose([d.box for d in many], [d.box for d in few])
    assert all(0 <= d.box[0] <= d.box[2] <= 400 and 0 <= d.box[1] <= d.box[3] <= 300 for d in many)


def test_end2end_keeps_overlapping_rows_it_is_given() -> None:
    """NMS ran inside the model: two overlapping rows of one class are both answers."""
    rows = np.array([[[10, 10, 50, 50, 0.9, 2], [12, 12, 52, 52, 0.8, 2], [0, 0, 5, 5, 0.1, 0]]], np.float32)
    [found] = decode.detections(field_manifest("end2end-det"), {"output0": rows}, [INPUT])
    assert [(d.label, d.box) for d in found] == [("blue", (10, 10, 50, 50)), ("blue", (12, 12, 52, 52))]


def test_ssd_reads_yxyx_normalised_boxes_drops_background_and_padded_rows() -> None:
    outputs = {
        "detection_boxes:0": np.array(
            [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4], [0.2, 0.2, 0.9, 0.9]]],
            np.float32,
        ),
        "detection_scores:0": np.array([[0.9, 0.8, 0.7, 0.95]], np.float32),
        "detection_classes:0": np.array([[3.0, 0.0, 1.0, 2.0]], np.float32),  # 0 is background
        "num_detections:0": np.array([3.0], np.float32),  # the fourth row is padding
    }
    picture = Placement(2.0, 1.5, 0.0, 0.0, 320, 240)  # 320x240 stretched to 160x160
    [found] = decode.detections(field_manifest("ssd-tf"), outputs, [picture])
    assert [d.label for d in found] == ["blue", "red"]
    assert found[0].box == pytest.approx((0.2 * 160 * 2, 0.1 * 160 * 1.5, 0.6 * 160 * 2, 0.5 * 160 * 1.5))


def test_split_outputs_are_found_by_their_names_without_a_mapping() -> None:
    manifest = field_manifest("efficientnms-det", detection={"format": "end2end"})
    outputs = {
        "num_dets": np.array([[1]], np.int32),
        "det_boxes": np.array([[[1, 2, 3, 4], [0, 0, 0, 0]]], np.float32),
        "det_scores": np.array([[0.9, 0.0]], np.float32),
        "det_classes": np.array([[1, 0]], np.int32),
    }
    [found] = decode.detections(manifest, outputs, [INPUT])
    assert [(d.label, d.box) for d in found] == [("green", (1, 2, 3, 4))]


def test_a_batch_gives_each_image_its_own_answer() -> None:
    first = yolov8_output([(100, 100, 40, 40, 0, 0.9)])
    second = yolov8_output([(200, 50, 20, 20, 2, 0.6)])
    both = np.concatenate([first, second])
    found = decode.detections(
        field_manifest("yolov8-det"), {"output0": both}, [INPUT, Placement(2, 2, 0, 0, 640, 640)]
    )
    assert [[d.label for d in image] for image in found] == [["red"], ["blue"]]
    assert found[1][0].box == pytest.approx((380, 80, 420, 120))


@pytest.mark.parametrize(
    ("kind", "row", "best"),
    [("logits", [2.0, 1.0, 0.0, 0.0], 0.6103), ("probabilities", [0.1, 0.6, 0.2, 0.1], 0.6)],
)
def test_classifier_scores_are_softmaxed_only_when_logits(kind: str, row: list[float], best: float) -> None:
    manifest = field_manifest("classifier-tv", scores=kind)
    [classes] = decode.classes(manifest, {"output": np.array([row], np.float32)}, 1, 2)
    assert classes[0].score == pytest.approx(best, abs=1e-4)
    assert len(classes) == 2
