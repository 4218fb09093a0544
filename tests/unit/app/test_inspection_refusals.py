"""Models the inspection refuses, or accepts with a warning, each with a message saying what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import external_data_helper, helper

from app.fleet.inspection import InspectionError, Overrides, inspect_model
from tests import inspection_models as im


def test_external_data_is_refused(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "ext.onnx")
    proto = onnx.load(str(model))
    external_data_helper.convert_model_to_external_data(proto, location="weights.bin", size_threshold=0)
    onnx.save(proto, str(model))
    with pytest.raises(InspectionError, match=r"weights\.bin") as refused:
        inspect_model(model)
    assert "save_as_external_data=False" in str(refused.value)


def test_several_image_inputs_ask_for_task_raw(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["left", "right"], ["sum"])]
    dims = [1, 3, 8, 8]
    model = im.save(tmp_path / "stereo.onnx", nodes, [("left", dims), ("right", dims)], [("sum", dims)])
    with pytest.raises(InspectionError, match="give --task raw") as refused:
        inspect_model(model)
    assert "2 image-like inputs" in str(refused.value)
    assert inspect_model(model, Overrides(task="raw")).manifest.input.name == "left"


def test_a_labels_count_unlike_the_classes_warns_with_both_counts(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "net.onnx", classes=4)
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    found = inspect_model(model)
    [warning] = found.warnings
    assert "3 classes" in warning
    assert "scores 4" in warning
    assert "--labels" in warning
    assert found.manifest.labels == []  # a kit refuses a classifier whose labels miss classes


def test_ultralytics_names_unlike_the_detector_classes_warn(tmp_path: Path) -> None:
    meta = im.ultralytics_metadata(names="{0: 'person', 1: 'bicycle'}")
    found = inspect_model(im.yolov8(tmp_path / "det.onnx", classes=3, metadata=meta))
    assert any("names 2 classes" in w and "scores 3" in w for w in found.warnings)


@pytest.mark.parametrize(
    ("build", "task", "expected", "found"),
    [
        (im.classifier, "detection", "[N, 4 + classes, boxes]", "logits [?, 4]"),
        (im.yolov8, "classification", "one output [N, classes]", "output0 [1, 7, 64]"),
    ],
)
def test_a_forced_task_that_contradicts_the_outputs_is_refused(
    tmp_path: Path, build: object, task: str, expected: str, found: str
) -> None:
    model = build(tmp_path / "m.onnx")  # type: ignore[operator]
    with pytest.raises(InspectionError) as refused:
        inspect_model(model, Overrides(task=task))  # type: ignore[arg-type]
    message = str(refused.value)
    assert f"--task {task} does not fit" in message
    assert expected in message
    assert found in message
    assert "Leave --task out" in message


@pytest.mark.parametrize(
    "content", [b"hello, not a model\n", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b""]
)
def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path, content: bytes) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(content)
    with pytest.raises(InspectionError, match="is not an ONNX model") as refused:
        inspect_model(fake)
    assert "export the model to ONNX again" in str(refused.value)


def test_a_file_too_large_for_onnx_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.onnx"
    with huge.open("wb") as handle:  # sparse: takes no disk
        handle.truncate(2 << 30)
    with pytest.raises(InspectionError, match="at most"):
        inspect_model(huge)


def test_a_missing_file_and_a_model_without_an_image_input(tmp_path: Path) -> None:
    with pytest.raises(InspectionError, match="does not exist"):
        inspect_model(tmp_path / "missing.onnx")
    nodes = [helper.make_node("Relu", ["features"], ["out"])]
    model = im.save(tmp_path / "vec.onnx", nodes, [("features", ["N", 128])], [("out", ["N", 128])])
    with pytest.raises(InspectionError, match="no image input") as refused:
        inspect_model(model)
    assert "manifest.json" in str(refused.value)


def test_bad_override_values_say_the_form(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "net.onnx")
    with pytest.raises(InspectionError, match=r"--name .My Net.* my-net"):
        inspect_model(model, Overrides(name="My Net"))
    with pytest.raises(InspectionError, match="--version"):
        inspect_model(model, Overrides(version="../1"))
    with pytest.raises(InspectionError, match="does not exist"):
        inspect_model(model, Overrides(labels=tmp_path / "nope.txt"))
    assert np.isfinite(inspect_model(model).manifest.normalisation.scale)


def test_flags_beside_a_written_manifest_are_refused_and_a_plain_file_gets_a_golden(tmp_path: Path) -> None:
    from app.fleet.deploy import prepare_package
    from app.fleet.inspection import write_manifest
    from app.fleet.models import ModelPackageError

    model = im.classifier(tmp_path / "net.onnx")
    plain = prepare_package(model)
    assert plain.inspection is not None
    assert plain.manifest.golden is not None  # the kit checks it before install
    write_manifest(model, plain.manifest)
    assert prepare_package(model).inspection is None  # the manifest beside it decides
    with pytest.raises(ModelPackageError, match="leave out --name --task") as refused:
        prepare_package(model, Overrides(name="other", task="raw"))
    assert "net.manifest.json" in str(refused.value)
