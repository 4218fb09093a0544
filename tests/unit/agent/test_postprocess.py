"""Softmax top-k, non-maximum suppression and YOLO box decoding."""

from __future__ import annotations

import numpy as np
import pytest

from agent.models.postprocess import decode_yolo, decode_yolo_batch, is_distribution, nms, softmax, top_k
from agent.wire import DetectionSpec


def test_softmax_sums_to_one_and_keeps_order_even_for_huge_logits() -> None:
    logits = np.array([[1.0, 3.0, 2.0], [1000.0, 1001.0, 999.0]])
    probabilities = softmax(logits)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.all(np.isfinite(probabilities))
    assert probabilities[0].argsort().tolist() == [0, 2, 1]


def test_top_k_softmaxes_logits_and_orders_best_first() -> None:
    classes = top_k(np.array([[0.5, 4.0, -1.0, 2.0]]), ["cat", "dog", "fish", "bird"], 3)
    assert [c.label for c in classes] == ["dog", "bird", "cat"]
    assert [c.index for c in classes] == [1, 3, 0]
    assert classes[0].score > classes[1].score > classes[2].score
    every = top_k(np.array([0.5, 4.0, -1.0, 2.0]), [], 10)
    assert sum(c.score for c in every) == pytest.approx(1.0)


def test_top_k_keeps_probabilities_as_they_are() -> None:
    classes = top_k(np.array([0.1, 0.7, 0.2], dtype=np.float32), ["a", "b", "c"], 2)
    assert [(c.label, round(c.score, 6)) for c in classes] == [("b", 0.7), ("c", 0.2)]


@pytest.mark.parametrize("size", [3, 10, 64, 65, 1000])
def test_top_k_of_short_and_long_rows_agrees_with_numpy(size: int) -> None:
    """Rows of up to 64 classes take a plain-Python path; both must give numpy's answer."""
    rng = np.random.default_rng(size)
    labels = [f"c{i}" for i in range(size)]
    logits = rng.normal(0, 3, size).astype(np.float32)
    logits[1] = logits[2]  # a tie: the lower index first, as a stable argsort
    probabilities = softmax(logits.astype(np.float64))
    for row, expected in ((logits, probabilities), (probabilities, probabilities)):
        got = top_k(row, labels, 5)
        best = np.argsort(-expected, kind="stable")[:5]
        assert [c.index for c in got] == best.tolist()
        assert [c.label for c in got] == [labels[i] for i in best]
        assert [c.score for c in got] == pytest.approx(expected[best].tolist(), rel=1e-12)


def test_top_k_falls_back_to_the_index_as_label() -> None:
    classes = top_k(np.array([0.1, 0.2, 0.7]), ["only-one"], 3)
    assert [c.label for c in classes] == ["2", "1", "only-one"]


def test_is_distribution() -> None:
    assert is_distribution(np.array([0.25, 0.75]))
    assert not is_distribution(np.array([0.5, 0.7]))
    assert not is_distribution(np.array([1.5, -0.5]))
    assert not is_distribution(np.array([]))


def test_nms_drops_boxes_overlapping_a_better_one() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: best
            [1, 1, 11, 11],  # 1: IoU 81/119 ≈ 0.68 with 0 → dropped
            [20, 20, 30, 30],  # 2: apart → kept
            [5, 0, 15, 10],
        ]
    )  # 3: IoU 50/150 ≈ 0.33 with 0 → kept at 0.45
    scores = np.array([0.9, 0.8, 0.3, 0.6])
    assert nms(boxes, scores, 0.45).tolist() == [0, 3, 2]
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, 0.7).tolist() == [0, 1, 3, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_survives_degenerate_boxes() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5]])
    assert nms(boxes, np.array([0.5, 0.4]), 0.5).tolist() == [0, 1]


def yolo_rows() -> np.ndarray:
    """[1, boxes, 5 + 2 classes] in a 40×20 input: (cx, cy, w, h, objectness, class 0, class 1)."""
    return np.array(
        [
            [
                [10, 10, 8, 8, 0.9, 0.9, 0.1],  # A: class 0, 0.81
                [11, 10, 8, 8, 0.8, 0.9, 0.1],  # B: overlaps A, same class, 0.72 → suppressed
                [10, 10, 8, 8, 0.9, 0.2, 0.8],  # C: on A but class 1, 0.72 → kept
                [30, 5, 4, 4, 0.1, 0.9, 0.1],  # D: 0.09 → below threshold
                [38, 18, 8, 8, 1.0, 0.5, 0.4],  # E: class 0, 0.5, runs off the bottom-right corner
            ]
        ],
        dtype=np.float32,
    )


def test_decode_yolo_thresholds_suppresses_per_class_and_maps_back() -> None:
    detections = decode_yolo(yolo_rows(), DetectionSpec(), ["person", "car"], (2.0, 3.0), (40, 20))
    assert [(d.label, d.index, round(d.score, 4)) for d in detections] == [
        ("person", 0, 0.81),
        ("car", 1, 0.72),
        ("person", 0, 0.5),
    ]
    assert detections[0].box == pytest.approx((12.0, 18.0, 28.0, 42.0))  # (6, 6, 14, 14) × (2, 3)
    assert detections[1].box == pytest.approx((12.0, 18.0, 28.0, 42.0))
    assert detections[2].box == pytest.approx((68.0, 42.0, 80.0, 60.0))  # clipped to 40×20 first


def test_decode_yolo_caps_the_number_of_detections() -> None:
    spec = DetectionSpec(max_detections=2, score_threshold=0.05)
    detections = decode_yolo(yolo_rows()[0], spec, [], (1.0, 1.0), (40, 20))
    assert [round(d.score, 4) for d in detections] == [0.81, 0.72]
    assert detections[1].label == "1"


def test_decode_yolo_single_class_and_empty_outputs() -> None:
    rows = np.array([[5, 5, 2, 2, 0.6], [5, 5, 2, 2, 0.1]])
    detections = decode_yolo(rows, DetectionSpec(), ["thing"], (1.0, 1.0), (10, 10))
    assert [(d.label, d.score) for d in detections] == [("thing", 0.6)]
    assert decode_yolo(np.zeros((1, 0, 7)), DetectionSpec(), [], (1.0, 1.0), (10, 10)) == []


def test_decode_yolo_ignores_nan_rows() -> None:
    rows = np.array([[5, 5, 2, 2, np.nan, 1.0], [5, 5, 2, 2, 0.9, 1.0]])
    assert len(decode_yolo(rows, DetectionSpec(), [], (1.0, 1.0), (10, 10))) == 1


def test_decode_yolo_batch_gives_what_decode_yolo_gives_for_each_image() -> None:
    """The plain-Python path for few candidates against the numpy one, exactly: random scenes
    with many overlapping boxes, ties, boxes off the edges, NaN and inf, and crowded ones
    that take numpy's path."""
    rng = np.random.default_rng(7)
    spec = DetectionSpec(score_threshold=0.3, iou_threshold=0.4, max_detections=5)
    for trial in range(60):
        boxes = 200 if trial % 10 == 0 else 24
        outputs = np.concatenate(
            [
                rng.uniform(-10, 50, (8, boxes, 2)),
                rng.uniform(-2, 30, (8, boxes, 2)),
                rng.choice([0.2, 0.5, 0.9, 1.0], (8, boxes, 1)),
                rng.choice([0.1, 0.5, 0.8], (8, boxes, 3)),
            ],
            axis=2,
        ).astype(np.float32)
        outputs[1, 3] = np.nan
        outputs[2, 4, 0] = np.inf
        outputs[3, 5:] = outputs[3, 5]  # identical boxes: ties broken by order
        scales = [(float(rng.uniform(0.5, 3)), float(rng.uniform(0.5, 3))) for _ in range(8)]
        with np.errstate(invalid="ignore"):  # inf - inf in the planted box: numpy says so
            batched = decode_yolo_batch(outputs, spec, ["a", "b"], scales, (40, 20))
            alone = [decode_yolo(outputs[i], spec, ["a", "b"], scales[i], (40, 20)) for i in range(8)]
        assert batched == alone
    assert sum(len(found) for found in batched) > 0
