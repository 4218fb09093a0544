"""Quantization on small real models: an opset-11 conv net built here, and the bundled digits CNN."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from agent.models.verify import check_in_process
from agent.toolkit.hashing import sha256_file
from agent.toolkit.quantize import opset_of
from app.fleet.models import load_package, manifest_path
from app.fleet.quantize import Mode, QuantizeError, quantize_model
from app.fleet.quantreport import compare
from resources import datasets_dir, models_dir
from tests.onnx_models import conv_classifier as tiny_model

CLASSES = 4
SIZE = 16


def pictures(folder: Path, per_class: int = 4) -> Path:
    """Folder-per-label PNGs (`<class>/<n>.png`) of noisy colour patches, larger than the input."""
    rng = np.random.default_rng(1)
    for label in range(CLASSES):
        (folder / str(label)).mkdir(parents=True)
        for n in range(per_class):
            pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            pixels[4:16, 4:16] = rng.integers(0, 255, 3)
            Image.fromarray(pixels).save(folder / str(label) / f"{n}.png")
    return folder


@pytest.fixture
def fp32(tmp_path: Path) -> Path:
    return tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return pictures(tmp_path / "images")


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_static_upgrades_opset_and_writes_per_channel_qdq(fp32: Path, images: Path, tmp_path: Path) -> None:
    result = quantize_model(fp32, tmp_path / "out" / "tiny-int8.onnx", "static", images, runs=5)

    assert (result.source_opset, result.opset) == (11, 13)
    assert any("opset 11 to 13" in note for note in result.notes)
    assert result.calibration_images == 16
    model = onnx.load(str(result.model))
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(result.model)
    scales = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_scales = [
        scales[n.input[1]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0].startswith("w1")
    ]
    assert len(weight_scales) == 1
    assert weight_scales[0].size == 8, "conv weights are quantized per output channel"
    # written atomically: no temporary file is left beside the result
    written = sorted(p.name for p in result.model.parent.iterdir())
    assert written == ["tiny-int8.manifest.json", "tiny-int8.onnx"]


def test_static_result_runs_with_any_batch_and_passes_the_agents_check(
    fp32: Path, images: Path, tmp_path: Path
) -> None:
    result = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "static", images, runs=5)

    session = ort.InferenceSession(str(result.model), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(2).random((3, 3, SIZE, SIZE)).astype(np.float32)
    assert session.run(None, {"image": batch})[0].shape == (3, CLASSES)
    manifest = load_package(result.model)
    assert result.manifest == manifest
    assert (manifest.precision, manifest.task, manifest.version) == ("int8", "raw", "1-int8")
    assert manifest.name == "tiny"
    assert any("no manifest" in note for note in result.notes)
    check_in_process(result.model, manifest)


def test_source_manifest_carries_over_and_labelled_images_give_accuracy(
    fp32: Path, images: Path, tmp_path: Path
) -> None:
    fields = {
        "name": "tiny",
        "version": "2.1",
        "task": "classification",
        "precision": "fp32",
        "input": {"name": "image", "height": SIZE, "width": SIZE, "channels": 3},
        "normalisation": {"scale": 1 / 255, "mean": [0.5], "std": [0.25]},
        "labels": [str(c) for c in range(CLASSES)],
        "sha256": "0" * 64,
        "size_bytes": 1,
    }
    fields.update(sha256=sha256_file(fp32), size_bytes=fp32.stat().st_size)
    manifest_path(fp32).write_text(json.dumps(fields))

    result = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "static", images, evaluation=images, runs=5)

    assert result.manifest is not None
    assert (result.manifest.version, result.manifest.labels) == ("2.1-int8", fields["labels"])
    assert result.manifest.normalisation.std == [0.25]
    assert result.report.labelled
    assert result.report.images == 16
    assert 0 <= result.manifest.figures["accuracy_top1"] <= 1
    assert "agreement_top1_vs_fp32" in result.manifest.figures


def test_dynamic_quantizes_weights_without_calibration(fp32: Path, tmp_path: Path) -> None:
    result = quantize_model(fp32, tmp_path / "tiny-dyn.onnx", "dynamic", runs=5)

    assert result.opset == 13
    assert result.calibration_images == 0
    assert op_types(result.model) & {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}
    session = ort.InferenceSession(str(result.model), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((1, 3, SIZE, SIZE), np.float32)})[0].shape == (1, CLASSES)
    assert load_package(result.model).precision == "int8"


def conv_weight_type(path: Path) -> set[int]:
    model = onnx.load(str(path))
    stored = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    return {stored[node.input[1]] for node in model.graph.node if node.op_type == "ConvInteger"}


@pytest.mark.parametrize("runtime", [None, "1.23.2", "1.24.0"])
def test_dynamic_conv_weights_are_unsigned_whatever_the_kits_runtime(
    fp32: Path, tmp_path: Path, runtime: str | None
) -> None:
    result = quantize_model(fp32, tmp_path / "tiny-dyn.onnx", "dynamic", runs=5, runtime=runtime)

    assert conv_weight_type(result.model) == {TensorProto.UINT8}  # faster, and every runtime runs them
    assert any(note.startswith("unsigned 8-bit weights") and "faster" in note for note in result.notes)
    session = ort.InferenceSession(str(result.model), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((1, 3, SIZE, SIZE), np.float32)})[0].shape == (1, CLASSES)


def test_signed_conv_weights_only_when_asked_and_where_the_kits_runtime_has_the_kernel(
    fp32: Path, images: Path, tmp_path: Path
) -> None:
    signed = quantize_model(fp32, tmp_path / "s8.onnx", "dynamic", runs=3, runtime="1.24.0", signed_conv=True)
    assert conv_weight_type(signed.model) == {TensorProto.INT8}
    assert any(note.startswith("signed 8-bit Conv weights, as asked") for note in signed.notes)
    assert not any(note.startswith("unsigned") for note in signed.notes)

    with pytest.raises(
        QuantizeError, match=r"1\.23\.2 has no ConvInteger kernel for signed weights \(1\.24\+\)"
    ):
        quantize_model(fp32, tmp_path / "old.onnx", "dynamic", runs=3, runtime="1.23.2", signed_conv=True)
    with pytest.raises(QuantizeError, match="dynamic-mode choice"):
        quantize_model(fp32, tmp_path / "st.onnx", "static", images, runs=3, signed_conv=True)
    assert not (tmp_path / "old.onnx").exists()
    assert not (tmp_path / "st.onnx").exists()


def test_compare_reports_sizes_latency_and_agreement(fp32: Path, images: Path, tmp_path: Path) -> None:
    int8 = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "static", images, runs=5).model

    report = compare(fp32, int8, images, runs=10, warmup=2)

    assert report.images == 16
    assert report.agreement_top1 is not None
    assert 0 <= report.agreement_top1 <= 1
    assert report.fp32.size_bytes == fp32.stat().st_size
    assert report.size_ratio > 0
    for side in (report.fp32, report.int8):
        assert 0 < side.latency_ms_p50 <= side.latency_ms_p95
        assert 0 < side.latency_1t_ms_p50 <= side.latency_1t_ms_p95
    assert report.speed_ratio_1t > 0
    assert report.labelled  # folders 0-3 read as class indices without a manifest
    text = report.to_text()
    # the tiny model may well run slower in INT8: the table says which way
    for threads in ("default threads", "1 thread"):
        assert re.search(rf"latency p50 \({threads}\) .* \d+\.\d\d× (faster|slower)", text)
    assert "points" in text
    json.dumps(report.to_dict())


def test_class_names_come_from_labels_txt_or_the_caller(fp32: Path, tmp_path: Path) -> None:
    words = ["cat", "dog", "eel", "fox"]
    named = pictures(tmp_path / "named", per_class=2)
    for index, word in enumerate(words):
        (named / str(index)).rename(named / word)
    int8 = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "dynamic", runs=3).model

    assert not compare(fp32, int8, named, runs=3, warmup=1).labelled
    assert compare(fp32, int8, named, words, runs=3, warmup=1).labelled
    (named / "labels.txt").write_text("\n".join(words) + "\n")
    report = compare(fp32, int8, named, runs=3, warmup=1)
    assert report.labelled
    assert report.images == 8


def test_a_manifest_named_after_the_whole_file_name_is_used(fp32: Path, images: Path, tmp_path: Path) -> None:
    fields = {
        "name": "tiny-net",
        "version": "3",
        "task": "classification",
        "input": {"name": "image", "height": SIZE, "width": SIZE, "channels": 3},
        "labels": [str(c) for c in range(CLASSES)],
        "sha256": sha256_file(fp32),
        "size_bytes": fp32.stat().st_size,
    }
    (tmp_path / "tiny.onnx.manifest.json").write_text(json.dumps(fields))

    result = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "static", images, runs=3)

    assert result.manifest is not None
    assert (result.manifest.name, result.manifest.version, result.manifest.task) == (
        "tiny-net",
        "3-int8",
        "classification",
    )
    (tmp_path / "tiny.onnx.manifest.json").write_text(json.dumps({**fields, "size_bytes": 1}))
    with pytest.raises(QuantizeError, match=r"does not describe tiny\.onnx"):
        quantize_model(fp32, tmp_path / "again.onnx", "static", images, runs=3)


def test_compare_without_images_uses_a_random_input(fp32: Path, images: Path, tmp_path: Path) -> None:
    int8 = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "dynamic", runs=5).model

    report = compare(fp32, int8, runs=5, warmup=1)

    assert report.images == 0
    assert report.agreement_top1 is None
    assert not report.labelled
    assert report.mean_abs_error >= 0


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path, images: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("these are not the weights you are looking for\n" * 20)

    with pytest.raises(QuantizeError, match="not an ONNX model"):
        quantize_model(text, tmp_path / "out.onnx", "static", images)
    assert not (tmp_path / "out.onnx").exists()


def test_an_empty_calibration_folder_is_refused(fp32: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(QuantizeError, match="holds no images"):
        quantize_model(fp32, tmp_path / "out.onnx", "static", tmp_path / "empty")
    with pytest.raises(QuantizeError, match="does not exist"):
        quantize_model(fp32, tmp_path / "out.onnx", "static", tmp_path / "missing")
    with pytest.raises(QuantizeError, match="needs calibration images"):
        quantize_model(fp32, tmp_path / "out.onnx", "static", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "tiny.onnx"]


def test_an_undecodable_image_is_named(fp32: Path, images: Path, tmp_path: Path) -> None:
    broken = images / "0" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)

    with pytest.raises(QuantizeError, match=r"broken\.png is not a readable image"):
        quantize_model(fp32, tmp_path / "out.onnx", "static", images, max_images=100)


def test_a_free_picture_size_comes_from_the_calibration_images_or_the_caller(
    tmp_path: Path, images: Path
) -> None:
    any_size = tiny_model(tmp_path / "any-size.onnx", dims=("N", 3, "height", "width"))

    result = quantize_model(any_size, tmp_path / "from-images.onnx", "static", images, runs=3)

    assert result.manifest is not None
    assert (result.manifest.input.height, result.manifest.input.width) == (24, 24)  # the pictures' size
    assert any("used 24x24" in note for note in result.notes)
    given = quantize_model(any_size, tmp_path / "given.onnx", "static", images, runs=3, input_size=(16, 20))
    assert given.manifest is not None
    assert (given.manifest.input.height, given.manifest.input.width) == (16, 20)
    session = ort.InferenceSession(str(given.model), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((2, 3, 40, 30), np.float32)})[0].shape == (2, CLASSES)
    Image.new("RGB", (50, 30)).save(images / "0" / "wide.png")
    with pytest.raises(QuantizeError, match="differ in size; give the size"):
        quantize_model(any_size, tmp_path / "mixed.onnx", "static", images)
    with pytest.raises(QuantizeError, match="fixed at 16x16, not 8x8"):
        quantize_model(
            tiny_model(tmp_path / "fixed.onnx"), tmp_path / "out.onnx", "dynamic", input_size=(8, 8)
        )
    assert opset_of(onnx.load(str(any_size))) == 11


def test_dynamic_on_a_free_picture_size_writes_a_manifest_only_with_a_size(tmp_path: Path) -> None:
    any_size = tiny_model(tmp_path / "any-size.onnx", dims=("N", 3, "height", "width"))

    bare = quantize_model(any_size, tmp_path / "bare.onnx", "dynamic", runs=3)
    sized = quantize_model(any_size, tmp_path / "sized.onnx", "dynamic", runs=3, input_size=(16, 16))

    assert bare.manifest is None
    assert any("no manifest written" in note for note in bare.notes)
    assert sized.manifest is not None
    assert load_package(sized.model).input.height == 16


def test_a_new_output_without_manifest_removes_the_stale_one(tmp_path: Path) -> None:
    any_size = tiny_model(tmp_path / "any-size.onnx", dims=("N", 3, "height", "width"))
    out = tmp_path / "out.onnx"
    quantize_model(any_size, out, "dynamic", runs=3, input_size=(16, 16))
    assert manifest_path(out).exists()

    quantize_model(any_size, out, "dynamic", runs=3)

    assert not manifest_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["any-size.onnx", "out.onnx"]


def test_dynamic_on_a_non_image_input_writes_no_manifest(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.random.default_rng(3).normal(size=(64, 32)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        [weights],
    )
    source = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(source))

    result = quantize_model(source, tmp_path / "flat-int8.onnx", "dynamic", runs=3)

    assert result.manifest is None
    assert result.manifest_path is None
    assert any("no manifest written" in note for note in result.notes)
    assert "MatMulInteger" in op_types(result.model)


def test_bundled_digits_int8_is_within_one_point_of_fp32() -> None:
    fp32, int8 = models_dir() / "digits-cnn-fp32.onnx", models_dir() / "digits-cnn-int8.onnx"
    assert load_package(fp32).precision == "fp32"
    assert load_package(int8).precision == "int8"

    report = compare(fp32, int8, datasets_dir() / "digits-eval", runs=20, warmup=5)

    assert report.labelled
    assert report.images >= 300
    assert report.fp32.accuracy_top1 is not None
    assert report.fp32.accuracy_top1 >= 0.97
    assert report.accuracy_delta_points is not None
    assert report.accuracy_delta_points >= -1.0
    assert report.agreement_top1 is not None
    assert report.agreement_top1 >= 0.98


def weight_codes(path: Path, data_type: int) -> np.ndarray:
    """Every number of that 8-bit type stored in the model: its quantized weights (and zero points)."""
    model = onnx.load(str(path))
    codes = [numpy_helper.to_array(i).ravel() for i in model.graph.initializer if i.data_type == data_type]
    assert codes, "the model stores no weights of that type"
    return np.concatenate(codes).astype(np.int16)


@pytest.mark.parametrize(("mode", "signed"), [("static", True), ("dynamic", True), ("dynamic", False)])
def test_weights_take_seven_bits_unless_full_range_is_asked_for(
    mode: Mode, signed: bool, fp32: Path, images: Path, tmp_path: Path
) -> None:
    calibration = images if mode == "static" else None
    asked = mode == "dynamic" and signed  # static mode's weights are signed anyway
    runtime = "1.24.0" if asked else None  # a kit whose ONNX Runtime has signed ConvInteger

    safe = quantize_model(
        fp32, tmp_path / "safe.onnx", mode, calibration, runs=3, runtime=runtime, signed_conv=asked
    )
    full = quantize_model(
        fp32,
        tmp_path / "full.onnx",
        mode,
        calibration,
        runs=3,
        reduce_range=False,
        runtime=runtime,
        signed_conv=asked,
    )

    assert (safe.reduce_range, full.reduce_range) == (True, False)
    assert any(note.startswith("7-bit weights") for note in safe.notes)
    if signed:  # symmetric int8: 7 bits are -64..64, full range -127..127
        assert np.abs(weight_codes(safe.model, TensorProto.INT8)).max() == 64
        assert np.abs(weight_codes(full.model, TensorProto.INT8)).max() == 127
        # x86 CPUs without VNNI add u8×s8 products in pairs into int16, which 8-bit weights can overflow
        assert any(note.startswith("full 8-bit weights") and "VNNI" in note for note in full.notes)
    else:  # uint8 around a zero point: 7 bits are 0..127, full range 0..255
        safe_codes, full_codes = (
            weight_codes(safe.model, TensorProto.UINT8),
            weight_codes(full.model, TensorProto.UINT8),
        )
        assert (safe_codes.min(), safe_codes.max()) == (0, 127)
        assert (full_codes.min(), full_codes.max()) == (0, 255)
        # u8×u8 kernels widen to 16 bits before adding pairs: full range is accurate on every CPU
        assert any(note.startswith("full 8-bit weights") and "every CPU" in note for note in full.notes)
        assert not any("deploy only" in note for note in full.notes)
    assert (load_package(safe.model).source_model or "").endswith(f"{mode} INT8 by kitfleet, 7-bit weights")
    assert (load_package(full.model).source_model or "").endswith(f"{mode} INT8 by kitfleet, 8-bit weights")


def test_pre_processing_runs_without_sympy_too(fp32: Path, images: Path, tmp_path: Path) -> None:
    # ONNX Runtime's symbolic shape inference needs sympy, which a laptop may lack; ONNX's own shape
    # inference serves these models, so the graph is still pre-optimised as ONNX Runtime recommends
    result = quantize_model(fp32, tmp_path / "tiny-int8.onnx", "static", images, runs=3)

    assert not any("skipped" in note for note in result.notes), result.notes
