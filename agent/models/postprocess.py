"""The names this module had before decoding was split by output family (agent/models/decode/):
kept for the scripts and tests that import them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.models.decode.boxes import nms
from agent.models.decode.classify import is_distribution, softmax, top_k
from agent.models.decode.yolo import decode_rows
from agent.toolkit.images import Placement
from agent.wire import Detection, DetectionSpec

__all__ = ["decode_yolo", "decode_yolo_batch", "is_distribution", "nms", "softmax", "top_k"]


def _placement(scale: tuple[float, float], input_size: tuple[int, int]) -> Placement:
    """A plain resize's placement: boxes clipped to the input, then scaled."""
    (scale_x, scale_y), (width, height) = scale, input_size
    return Placement(scale_x, scale_y, 0.0, 0.0, width * scale_x, height * scale_y)


def decode_yolo(
    output: np.ndarray,
    spec: DetectionSpec,
    labels: Sequence[str],
    scale: tuple[float, float],
    input_size: tuple[int, int],
) -> list[Detection]:
    """Detections in one image's YOLOv5-style output [boxes, 5 + classes] (a leading batch of 1
    is dropped); `scale` is (image width / input width, image height / input height)."""
    rows = np.asarray(output, dtype=np.float64)
    rows = rows.reshape(1, -1, rows.shape[-1])
    return decode_rows(rows, spec, labels, [_placement(scale, input_size)])[0]


def decode_yolo_batch(
    outputs: np.ndarray,
    spec: DetectionSpec,
    labels: Sequence[str],
    scales: Sequence[tuple[float, float]],
    input_size: tuple[int, int],
) -> list[list[Detection]]:
    """`decode_yolo` for each image of a batch's output [images, boxes, 5 + classes]."""
    rows = np.asarray(outputs, dtype=np.float64)
    rows = rows.reshape(len(rows), -1, rows.shape[-1])
    return decode_rows(rows, spec, labels, [_placement(scale, input_size) for scale in scales])
