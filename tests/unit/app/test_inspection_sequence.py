"""A sequence recogniser's output (PP-OCR's text-line model: [N, steps, characters] out of a Softmax)
has a YOLOv8 head's shape, rows fewer than columns, but is never read as a detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from app.fleet.inspection import InspectionError, Overrides, inspect_model
from tests import inspection_models as im


def recogniser(path: Path, last: str) -> Path:
    """[1, 3, 8, 32] -> [1, 8, 96] (8 steps, 96 characters), ending in `last`."""
    end = helper.make_node(last, ["steps"], ["probs"])
    if last == "Softmax":
        end.attribute.append(helper.make_attribute("axis", 2))
    nodes = [helper.make_node("Reshape", ["images", "shape"], ["steps"]), end]
    shape = ("shape", np.array([1, 8, 96], dtype=np.int64))
    return im.save(path, nodes, [("images", [1, 3, 8, 32])], [("probs", [1, 8, 96])], [shape], opset=12)


def test_per_step_softmax_scores_deploy_as_raw_saying_what_they_look_like(tmp_path: Path) -> None:
    found = inspect_model(recogniser(tmp_path / "rec.onnx", "Softmax"))
    assert found.manifest.task == "raw"
    assert found.manifest.detection is None
    assert "class scores per step" in found.why["task"]
    assert "CTC text-line" in found.why["task"]
    assert "INPUT.npy --out" in found.why["task"]  # a kit refuses pictures for a raw model
    with pytest.raises(InspectionError, match=r"does not fit rec\.onnx"):
        inspect_model(tmp_path / "rec.onnx", Overrides(task="detection"))


def test_the_same_shape_without_a_softmax_is_still_a_yolov8_head(tmp_path: Path) -> None:
    found = inspect_model(recogniser(tmp_path / "head.onnx", "Sigmoid"))
    assert found.manifest.detection is not None
    assert found.manifest.detection.format == "yolov8"
