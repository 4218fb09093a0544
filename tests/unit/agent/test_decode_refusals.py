"""Outputs that contradict the manifest's family are refused clearly (expected vs found), at
install and at answer time, never decoded into garbage or failed inside numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from agent.api.errors import status_of
from agent.models import decode
from agent.models.infer import run_inference
from agent.models.verify import VerificationFailed, check_in_process
from agent.toolkit.errors import Invalid
from tests.field_models import FIELD, field_manifest


def mismatch(call: object, *words: str) -> Invalid:
    with pytest.raises(Invalid) as caught:
        call()  # type: ignore[operator]
    assert caught.value.error == "output_mismatch"
    assert status_of(caught.value) == 422
    for word in words:
        assert word in caught.value.message, caught.value.message
    assert "kitfleet models inspect" in (caught.value.hint or "")
    return caught.value


@pytest.mark.parametrize(
    ("family", "shapes", "expected", "found"),
    [
        ("yolov8-det", {"output0": [1, 8]}, "[N, 4 + 3, boxes]", "output0 [1, 8]"),
        ("yolov8-det", {"output0": [1, 1344, 8]}, "[N, 4 + 3, boxes]", "[1, 1344, 8]"),
        ("yolov5-det", {"output0": [1, 7, 2100]}, "[N, boxes, 5 + 3]", "[1, 7, 2100]"),
        ("end2end-det", {"output0": [1, 20, 7]}, "[N, K, 6]", "[1, 20, 7]"),
        ("ssd-tf", {"detection_boxes:0": [1, 10, 4]}, "scores [N, K]", "no output for"),
        (
            "efficientnms-det",
            {"num_dets": [1, 1], "det_boxes": [1, 16, 5], "det_scores": [1, 16], "det_classes": [1, 16]},
            "boxes [N, K, 4]",
            "[1, 16, 5]",
        ),
        ("classifier-tv", {"output": [1, 7, 2100]}, "[N, 4]", "[1, 7, 2100]"),
        ("classifier-tv", {"output": ["batch", 10]}, "(4 labels)", "[batch, 10]"),
    ],
)
def test_each_family_names_what_it_expected_and_what_it_found(
    family: str, shapes: dict[str, list[object]], expected: str, found: str
) -> None:
    manifest = field_manifest(family)
    mismatch(lambda: decode.check_outputs(manifest, shapes), expected, found)  # type: ignore[arg-type]


def test_free_dimensions_pass_the_declared_check() -> None:
    decode.check_outputs(field_manifest("yolov8-det"), {"output0": ["batch", 7, "anchors"]})
    decode.check_outputs(field_manifest("yolov8-det"), {"output0": [None, None, None]})


def test_answering_with_the_wrong_family_is_a_refusal_not_a_crash() -> None:
    """A detector manifest on a classifier's outputs (past install): 422 with both shapes."""
    session = ort.InferenceSession(str(FIELD / "classifier-tv.onnx"), providers=["CPUExecutionProvider"])
    manifest = field_manifest("classifier-tv", task="detection", detection={"format": "yolov8"}, labels=["a"])
    picture = (FIELD / "scene-a.png").read_bytes()
    mismatch(
        lambda: run_inference(session, manifest, picture, "image/png"), "[N, 4 + 1, boxes]", "output [1, 4]"
    )


@pytest.mark.parametrize(
    ("family", "model", "words"),
    [
        ("yolov8-det", "classifier-tv", ["YOLOv8-style", "[N, 4 + 3, boxes]", "output [batch_size, 4]"]),
        ("classifier-tv", "yolov8-det", ["classifier", "[N, 4]", "output0 [1, 7, 2100]"]),  # seen by one run
        ("yolov5-det", "yolov8-det", ["YOLOv5-style", "[N, boxes, 5 + 3]"]),
        ("end2end-det", "yolov5-det", ["end-to-end", "[N, K, 6]", "output0 [1, 1344, 8]"]),
    ],
)
def test_install_refuses_a_manifest_of_another_family(
    family: str, model: str, words: list[str], tmp_path: Path
) -> None:
    path = FIELD / f"{model}.onnx"
    theirs = field_manifest(model)
    manifest = field_manifest(family, path, input=theirs.input, normalisation=theirs.normalisation)
    with pytest.raises(VerificationFailed) as caught:
        check_in_process(path, manifest)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert "kitfleet models inspect" in str(caught.value)


def test_install_runs_a_model_whose_output_shape_is_free_to_see_the_real_one(tmp_path: Path) -> None:
    """Reshape to [N, -1, 3] declares [N, ?, 3], which a YOLOv8 head might be: one run at the
    manifest's size shows [1, 1024, 3], which no YOLOv8 head with 3 labels gives."""
    path = tmp_path / "flat.onnx"
    shape = helper.make_node(
        "Constant", [], ["shape"], value=onnx.numpy_helper.from_array(np.array([0, -1, 3], np.int64))
    )
    flat = helper.make_node("Reshape", ["images", "shape"], ["output0"])
    graph = helper.make_graph(
        [shape, flat],
        "flat",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    manifest = field_manifest(
        "yolov8-det", path, input={"name": "images", "height": 32, "width": 32, "letterbox": True}
    )
    with pytest.raises(VerificationFailed, match=r"output0 \[1, 1024, 3\]"):
        check_in_process(path, manifest)
    check_in_process(FIELD / "yolov8-det.onnx", field_manifest("yolov8-det"))  # the right one installs


def test_broken_rows_are_dropped_not_answered() -> None:
    """NaN or infinite boxes and scores from a model never reach the answer (its JSON has no NaN)."""
    from agent.toolkit.images import Placement

    rows = np.zeros((1, 80, 6))
    rows[0, :, :4] = [10, 10, 50, 50]
    rows[0, :, 4] = np.linspace(0.9, 0.5, 80)
    rows[0, :3, 0] = [np.nan, np.inf, -np.inf]
    rows[0, 3, 4] = np.nan
    manifest = field_manifest("end2end-det", detection={"format": "end2end", "max_detections": 1000})
    [found] = decode.detections(manifest, {"output0": rows}, [Placement.identity(320, 320)])
    assert len(found) == 76
    assert all(np.isfinite(d.box).all() and np.isfinite(d.score) for d in found)


def test_an_output_of_unknown_rank_is_judged_by_one_run(tmp_path: Path) -> None:
    """Squeeze without axes on [N, 3] has a rank ONNX Runtime cannot know (it declares []): not
    a refusal by itself; one run shows [1, 3]."""
    path = tmp_path / "squeezed.onnx"
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("Squeeze", ["means"], ["squeezed"]),
        helper.make_node("Unsqueeze", ["squeezed", "axis"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "squeezed",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([0], np.int64), "axis")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == []
    manifest = field_manifest(
        "classifier-tv", path, input={"name": "images", "height": 8, "width": 8}, labels=["a", "b", "c"]
    )
    check_in_process(path, manifest)  # [1, 3] after one run: a classifier of 3 labels
    with pytest.raises(VerificationFailed, match=r"output \[1, 3\]"):
        check_in_process(path, manifest.model_copy(update={"labels": ["a", "b"]}))
