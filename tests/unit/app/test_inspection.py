"""A plain ONNX file becomes a manifest: each family by its output layout, exporter metadata read,
each field overridable, every inferred field with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.wire import Manifest
from app.fleet.inspection import InspectionError, Overrides, inspect_model, parse_size, write_manifest
from app.fleet.inspection.conventions import valid_name
from app.fleet.models import load_package
from tests import inspection_models as im


def test_a_classifier_export_is_inferred_with_reasons(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "mynet_v2.0.onnx", doc="a tiny net")
    found = inspect_model(model)
    m = found.manifest
    assert (m.name, m.task, found.family) == ("mynet_v2-0", "classification", "classification")
    assert (m.input.name, m.input.layout, m.input.height, m.input.width) == ("images", "NCHW", 16, 16)
    assert m.normalisation.mean == [0.485, 0.456, 0.406]  # a PyTorch classifier: ImageNet
    assert m.scores == "logits"  # ends in Gemm
    assert m.version == m.sha256[:12]
    assert not m.input.letterbox
    assert m.detection is None
    assert m.golden is None
    assert found.facts.doc_string == "a tiny net"
    why = dict((field, reason) for field, _, reason in found.rows())
    assert "made valid from 'mynet_v2.0'" in why["name"]
    assert "--normalise" in why["normalisation"]
    assert "sha256" in why["version"]
    assert "fixed in the model" in why["size"]


@pytest.mark.parametrize(
    ("build", "family", "classes"),
    [
        (im.yolov8, "yolov8", 3),
        (im.yolov5, "yolo", 3),
        (im.end2end, "end2end", None),
    ],
)
def test_each_single_output_detector_family_is_told_by_its_layout(
    tmp_path: Path, build: object, family: str, classes: int | None
) -> None:
    model = build(tmp_path / "det.onnx")  # type: ignore[operator]
    found = inspect_model(model)
    assert found.manifest.task == "detection"
    assert found.manifest.detection is not None
    assert found.manifest.detection.format == family
    assert found.manifest.normalisation.scale == pytest.approx(1 / 255)
    assert found.manifest.input.letterbox  # YOLO-family exports are letterboxed
    if classes:
        assert f"{classes} class scores" in found.why["family"]


@pytest.mark.parametrize(("count", "family"), [(True, "end2end"), (False, "end2end")])
def test_separate_boxes_scores_classes_outputs_are_mapped_by_role(
    tmp_path: Path, count: bool, family: str
) -> None:
    names = ("det_boxes", "det_classes", "det_scores", "num_dets")  # classes before scores: by name
    model = im.separate(tmp_path / "sep.onnx", count, names)  # EfficientNMS-style with a count
    spec = inspect_model(model).manifest.detection
    assert spec is not None
    assert spec.format == family
    expected = {"boxes": "det_boxes", "scores": "det_scores", "classes": "det_classes"}
    assert spec.outputs == ({**expected, "count": "num_dets"} if count else expected)


def test_boxes_scores_classes_and_a_count_are_ssd_style(tmp_path: Path) -> None:
    spec = inspect_model(im.separate(tmp_path / "ssd.onnx", True)).manifest.detection
    assert spec is not None
    assert spec.format == "ssd"
    assert spec.outputs == {"boxes": "boxes", "scores": "scores", "classes": "classes", "count": "count"}


def test_tensorflow_style_ssd_outputs_take_its_box_conventions(tmp_path: Path) -> None:
    names = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
    spec = inspect_model(im.separate(tmp_path / "tf.onnx", True, names)).manifest.detection
    assert spec is not None
    assert (spec.format, spec.box_order, spec.normalised_boxes, spec.class_offset) == ("ssd", "yxyx", True, 1)


def test_ultralytics_metadata_gives_labels_letterbox_and_free_size(tmp_path: Path) -> None:
    meta = im.ultralytics_metadata(imgsz="[64, 48]")
    model = im.yolov8(tmp_path / "yolov8n.onnx", size="H", batch="N", metadata=meta)
    found = inspect_model(model)
    m = found.manifest
    assert m.labels == ["person", "bicycle", "car"]
    assert (m.input.height, m.input.width) == (64, 48)
    assert "imgsz" in found.why["size"]
    assert m.input.letterbox
    assert "Ultralytics" in found.why["letterbox"]
    assert m.version == m.sha256[:12]  # Ultralytics' "version" is its own, not the model's
    assert "Ultralytics" in found.why["normalisation"]


def test_a_free_size_without_metadata_needs_the_flag(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "free.onnx", dims=("N", 3, "H", "W"))
    with pytest.raises(InspectionError, match="--input-size HxW") as refused:
        inspect_model(model)
    assert "free" in str(refused.value)
    found = inspect_model(model, Overrides(input_size=(224, 160)))
    assert (found.manifest.input.height, found.manifest.input.width) == (224, 160)
    assert found.why["size"] == "from --input-size"


def test_labels_beside_the_model_and_the_labels_flag(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "net.onnx", classes=3)
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n\n")
    assert inspect_model(model).manifest.labels == ["cat", "dog", "bird"]
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    assert inspect_model(model).manifest.labels == ["a", "b", "c"]  # labels.txt first
    mine = tmp_path / "mine.txt"
    mine.write_text("x\ny\nz\n")
    found = inspect_model(model, Overrides(labels=mine))
    assert found.manifest.labels == ["x", "y", "z"]
    assert "--labels" in found.why["labels"]


def test_metadata_names_are_read_as_a_literal_never_run(tmp_path: Path) -> None:
    hostile = "__import__('os').system('touch pwned')"
    meta = im.ultralytics_metadata(names=hostile)
    found = inspect_model(im.yolov8(tmp_path / "bad.onnx", metadata=meta))
    assert found.manifest.labels == []
    assert any("`names`" in w for w in found.warnings)
    assert not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()


def test_every_override_wins(tmp_path: Path) -> None:
    model = im.yolov8(tmp_path / "det.onnx")
    given = Overrides(
        name="field-det",
        version="2.1",
        normalise="symmetric",
        letterbox=False,
        score_threshold=0.6,
        input_size=(32, 32),
    )
    m = inspect_model(model, given).manifest
    assert (m.name, m.version, m.input.letterbox) == ("field-det", "2.1", False)
    assert m.normalisation.mean == [0.5]
    assert m.normalisation.std == [0.5]
    assert m.detection is not None
    assert m.detection.score_threshold == 0.6
    assert inspect_model(model, Overrides(task="raw")).manifest.task == "raw"


def test_a_raw_layout_deploys_as_raw_with_a_hint(tmp_path: Path) -> None:
    from onnx import helper

    nodes = [helper.make_node("Identity", ["images"], ["same"])]
    model = im.save(tmp_path / "seg.onnx", nodes, [("images", [1, 3, 8, 8])], [("same", [1, 3, 8, 8])])
    found = inspect_model(model)
    assert found.manifest.task == "raw"
    assert "kitfleet infer" in found.why["task"]
    assert "--task" in found.why["task"]


def test_the_model_version_field_is_the_version(tmp_path: Path) -> None:
    import onnx

    model = im.classifier(tmp_path / "v.onnx")
    proto = onnx.load(str(model))
    proto.model_version = 7
    onnx.save(proto, str(model))
    found = inspect_model(model)
    assert found.manifest.version == "7"
    assert "model_version" in found.why["version"]


def test_written_manifest_is_a_package_with_a_golden_and_is_not_overwritten(tmp_path: Path) -> None:
    model = im.classifier(tmp_path / "net.onnx")
    found = inspect_model(model, golden=True)
    assert found.manifest.golden is not None
    assert "logits" in found.manifest.golden.outputs
    written = write_manifest(model, found.manifest)
    assert load_package(model) == found.manifest  # sha256 and size match the file
    written.write_text("{}")
    with pytest.raises(InspectionError, match="--force"):
        write_manifest(model, found.manifest)
    write_manifest(model, found.manifest, force=True)
    assert Manifest.model_validate_json(written.read_text()) == found.manifest


@pytest.mark.parametrize(
    ("stem", "name"),
    [
        ("mynet_v2.0", "mynet_v2-0"),
        ("YOLOv8n", "yolov8n"),
        ("__x__", "x"),
        ("..", "model"),
        ("a" * 80, "a" * 64),
    ],
)
def test_names_are_made_valid_from_the_stem(stem: str, name: str) -> None:
    assert valid_name(stem) == name


def test_sizes_parse_height_first() -> None:
    assert parse_size("640x480") == (640, 480)
    for bad in ("640", "0x5", "99999x2", "axb"):
        with pytest.raises(ValueError, match=r"HEIGHTxWIDTH|1 to 8192"):
            parse_size(bad)
