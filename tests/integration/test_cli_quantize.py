"""`kitfleet quantize` run as the real CLI: the bundled digits CNN, an old opset-11 export with free
input sizes, and every bad input a technician is likely to give."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

from agent.toolkit.hashing import sha256_file
from app.fleet.models import load_package, manifest_path
from resources import datasets_dir, images_dir, models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet
from tests.onnx_field_models import correlation_head, paddle_recognizer
from tests.onnx_models import conv_classifier

DIGITS = models_dir() / "digits-cnn-fp32.onnx"


def digit_pictures(folder: Path) -> Path:
    """The ten sample digits (not the evaluation set) as calibration images."""
    folder.mkdir()
    for picture in images_dir().glob("digit-*.png"):
        shutil.copy(picture, folder)
    return folder


def colour_pictures(folder: Path, count: int = 8, size: tuple[int, int] = (20, 28)) -> Path:
    """Seeded noisy RGB pictures, all `size` (width, height)."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    for n in range(count):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{n}.png")
    return folder


def run_int8(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = np.random.default_rng(0).random(shape).astype(np.float32)
    result: np.ndarray = session.run(None, {session.get_inputs()[0].name: feed})[0]
    return result


def test_digits_static_with_eval_set_writes_a_deployable_int8_package(tmp_path: Path) -> None:
    out, report = tmp_path / "out" / "digits-int8.onnx", tmp_path / "reports" / "digits.json"

    done = kitfleet(
        tmp_path / "home",
        "quantize",
        str(DIGITS),
        str(out),
        "--calibration",
        str(digit_pictures(tmp_path / "calibration")),
        "--eval",
        str(datasets_dir() / "digits-eval"),
        "--runs",
        "5",
        "--report",
        str(report),
    )

    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (static INT8, QDQ per-channel, minmax on 10 calibration images" in done.stdout
    header = next(line for line in done.stdout.splitlines() if "FP32 digits-cnn-fp32.onnx" in line)
    assert "INT8 digits-int8.onnx" in header
    assert "INT8 vs FP32" in header
    accuracy = next(line for line in done.stdout.splitlines() if line.startswith("top-1 accuracy"))
    assert accuracy.count("%") == 2
    assert accuracy.endswith("points")
    assert "400 images with labels" in done.stdout
    manifest = load_package(out)  # checks size and sha256 against the file
    assert manifest.precision == "int8"
    assert manifest.sha256 == sha256_file(out)
    assert manifest.labels == [str(d) for d in range(10)]
    assert run_int8(out, (3, 1, 32, 32)).shape == (3, 10)
    data = json.loads(report.read_text())
    assert data["manifest"] == str(manifest_path(out))
    assert data["sha256"] == manifest.sha256
    assert 0.9 <= data["report"]["fp32"]["accuracy_top1"] <= 1
    assert data["report"]["int8"]["accuracy_top1"] is not None
    assert data["report"]["images"] == 400


@pytest.fixture
def opset11(tmp_path: Path) -> Path:
    """An old export: opset 11, batch, height and width all free."""
    return conv_classifier(tmp_path / "old.onnx", opset=11, dims=("batch", 3, "height", "width"))


def test_opset11_free_size_model_static_upgrades_and_takes_the_pictures_size(
    opset11: Path, tmp_path: Path
) -> None:
    out = tmp_path / "old-int8.onnx"

    done = kitfleet(
        tmp_path / "home",
        "quantize",
        str(opset11),
        str(out),
        "--calibration",
        str(colour_pictures(tmp_path / "calibration")),
        "--runs",
        "3",
        "--json",
    )

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["mode"], data["source_opset"], data["opset"]) == ("static", 11, 13)
    assert data["calibration_images"] == 8
    assert any("used 28x20" in note for note in data["notes"])
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(out)).graph.node}
    manifest = load_package(out)
    assert (manifest.input.height, manifest.input.width, manifest.precision) == (28, 20, "int8")
    assert run_int8(out, (2, 3, 40, 24)).shape == (2, 4)  # still any batch, any size


def test_opset11_free_size_model_dynamic_with_and_without_input_size(opset11: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"

    bare = kitfleet(home, "quantize", str(opset11), str(tmp_path / "bare.onnx"), "--runs", "3")
    sized = kitfleet(
        home,
        "quantize",
        str(opset11),
        str(tmp_path / "sized.onnx"),
        "--mode",
        "dynamic",
        "--input-size",
        "24x32",
        "--runs",
        "3",
        "--report",
        str(tmp_path / "sized.md"),
    )

    assert bare.returncode == 0, bare.stderr
    assert "dynamic INT8, weights only; opset 11 → 13" in bare.stdout
    assert "note: dynamic mode (weights only): no --calibration given" in bare.stdout
    assert "no manifest written" in bare.stdout
    assert not manifest_path(tmp_path / "bare.onnx").exists()
    assert run_int8(tmp_path / "bare.onnx", (1, 3, 16, 16)).shape == (1, 4)
    assert sized.returncode == 0, sized.stderr
    manifest = load_package(tmp_path / "sized.onnx")
    assert (manifest.input.height, manifest.input.width) == (24, 32)
    markdown = (tmp_path / "sized.md").read_text()
    assert "| --- | --- | --- | --- |" in markdown
    assert "| latency p50 (1 thread) |" in markdown


def conv_weight_types(path: Path) -> set[int]:
    model = onnx.load(str(path))
    stored = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    return {stored[node.input[1]] for node in model.graph.node if node.op_type == "ConvInteger"}


def codes(path: Path, data_type: int) -> np.ndarray:
    """Every number of that 8-bit type the model stores: its quantized weights and zero points."""
    stored = [
        onnx.numpy_helper.to_array(i).ravel().astype(np.int16)
        for i in onnx.load(str(path)).graph.initializer
        if i.data_type == data_type
    ]
    assert stored, "no weights of that type"
    return np.concatenate(stored)


def test_weights_take_seven_bits_unless_the_kits_have_vnni_or_arm_dot_product(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "model.onnx")
    home = tmp_path / "home"
    run = ("quantize", str(model), "--runs", "3", "--json")

    safe = kitfleet(home, *run[:2], str(tmp_path / "safe.onnx"), *run[2:])
    full = kitfleet(home, *run[:2], str(tmp_path / "full.onnx"), *run[2:], "--full-range-weights")

    assert safe.returncode == 0, safe.stderr
    data = json.loads(safe.stdout)
    assert conv_weight_types(tmp_path / "safe.onnx") == {TensorProto.UINT8}  # faster, and any runtime runs it
    assert any(note.startswith("unsigned 8-bit weights") and "faster" in note for note in data["notes"])
    assert data["weight_bits"] == 7
    assert any(note.startswith("7-bit weights") for note in data["notes"])
    assert (
        codes(tmp_path / "safe.onnx", TensorProto.UINT8).min(),
        codes(tmp_path / "safe.onnx", TensorProto.UINT8).max(),
    ) == (0, 127)
    assert (load_package(tmp_path / "safe.onnx").source_model or "").endswith("7-bit weights")
    assert full.returncode == 0, full.stderr
    full_notes = json.loads(full.stdout)["notes"]
    # unsigned weights run on u8×u8 kernels, which widen to 16 bits: no saturation without VNNI either
    assert any(
        note.startswith("full 8-bit weights (codes 0-255): accurate on every CPU") for note in full_notes
    )
    assert codes(tmp_path / "full.onnx", TensorProto.UINT8).max() == 255
    assert (load_package(tmp_path / "full.onnx").source_model or "").endswith("8-bit weights")


def test_signed_conv_weights_are_an_explicit_choice_checked_against_the_kits_runtime(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    model = conv_classifier(tmp_path / "model.onnx")
    home = tmp_path / "home"
    agent = start_agent("signed-kit", mdns=False)  # its ONNX Runtime, this venv's, has signed ConvInteger
    assert kitfleet(home, "adopt", agent.address, "--code", agent.pair_code()).returncode == 0
    signed = ("--signed-conv-weights", "--kit", "signed-kit")

    done = kitfleet(
        home,
        "quantize",
        str(model),
        str(tmp_path / "s8.onnx"),
        "--runs",
        "3",
        "--full-range-weights",
        *signed,
    )
    static = kitfleet(
        home,
        "quantize",
        str(model),
        str(tmp_path / "st.onnx"),
        "--mode",
        "static",
        "--calibration",
        str(tmp_path),
        "--runs",
        "3",
        *signed,
    )

    assert done.returncode == 0, done.stderr
    assert conv_weight_types(tmp_path / "s8.onnx") == {TensorProto.INT8}  # the kit's 1.24+ has the kernel
    assert "note: signed 8-bit Conv weights, as asked" in done.stdout
    assert "note: unsigned" not in done.stdout
    assert "note: full 8-bit weights: deploy only to kits with VNNI/AMX or ARM dot-product" in done.stdout
    assert np.abs(codes(tmp_path / "s8.onnx", TensorProto.INT8)).max() == 127
    assert static.returncode != 0
    assert "dynamic-mode choice" in static.stderr
    assert not (tmp_path / "st.onnx").exists()


def custom_op_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 16, 16])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, str(path))
    return path


def table_model(path: Path) -> Path:
    """A valid model whose input is a table of numbers, not a picture."""
    weights = onnx.numpy_helper.from_array(np.ones((8, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "table",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


BAD_INPUTS = {
    "input missing": (["{tmp}/missing.onnx", "{out}", "--calibration", "{pictures}"], "does not exist"),
    "input not onnx": (["{tmp}/notes.onnx", "{out}", "--calibration", "{pictures}"], "is not an ONNX model"),
    "output is input": (["{model}", "{model}", "--calibration", "{pictures}"], "would overwrite the input"),
    "output not onnx": (["{model}", "{tmp}/out.txt", "--calibration", "{pictures}"], "ending in .onnx"),
    "calibration missing": (
        ["{model}", "{out}", "--calibration", "{tmp}/nowhere"],
        "calibration folder .*nowhere does not exist",
    ),
    "calibration empty": (["{model}", "{out}", "--calibration", "{tmp}/empty"], "empty holds no images"),
    "calibration without images": (
        ["{model}", "{out}", "--calibration", "{tmp}/text"],
        "text holds no images",
    ),
    "static without calibration": (
        ["{model}", "{out}", "--mode", "static"],
        "--mode static needs --calibration DIR",
    ),
    "eval folder missing": (
        ["{model}", "{out}", "--mode", "dynamic", "--eval", "{tmp}/nowhere"],
        "--eval folder .*nowhere does not exist",
    ),
    "bad input size": (
        ["{model}", "{out}", "--mode", "dynamic", "--input-size", "big"],
        "--input-size 'big': give height x width",
    ),
    "unsupported operator": (
        ["{tmp}/custom.onnx", "{out}", "--mode", "dynamic"],
        "ONNX Runtime cannot load custom.onnx: .*Frobnicate.*not supported here",
    ),
    "static on a non-image input": (
        ["{tmp}/table.onnx", "{out}", "--calibration", "{pictures}"],
        "static quantization needs an image input",
    ),
    "report over the model": (
        ["{model}", "{out}", "--mode", "dynamic", "--report", "{model}"],
        "would overwrite a model or manifest",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_leaves_the_output_untouched(case: str, tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "model.onnx")
    (tmp_path / "notes.onnx").write_text("not a model\n" * 10)
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.txt").write_text("pictures go here\n")
    custom_op_model(tmp_path / "custom.onnx")
    table_model(tmp_path / "table.onnx")
    pictures = colour_pictures(tmp_path / "pictures", count=2, size=(16, 16))
    out = tmp_path / "out" / "result.onnx"
    out.parent.mkdir()
    out.write_bytes(b"an earlier result")
    manifest_path(out).write_text("{}")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    template, expected = BAD_INPUTS[case]
    args = [a.format(tmp=tmp_path, out=out, model=model, pictures=pictures) for a in template]

    done = kitfleet(tmp_path / "home", "quantize", *args)

    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kitfleet: ")
    assert re.search(expected, lines[0]), lines[0]
    assert out.read_bytes() == b"an earlier result"
    assert manifest_path(out).read_text() == "{}"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "home" not in p.parts)
    assert after == [p for p in before if "home" not in p.parts]


def test_facts_say_whether_int8_pays_off_on_the_kit(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("int8-kit", mdns=False)
    home = tmp_path / "home"
    assert kitfleet(home, "adopt", agent.address, "--code", agent.pair_code()).returncode == 0

    text = kitfleet(home, "facts", "int8-kit")
    data = json.loads(kitfleet(home, "facts", "int8-kit", "--json").stdout)

    assert text.returncode == 0, text.stderr
    advice = data["families"]["cpu"]["int8"]
    verdict = f"int8 dot-product ({advice['via']})" if advice["recommended"] else "no int8 dot-product"
    assert f"INT8 models: {verdict}. {advice['reason']}" in text.stdout.splitlines()


def test_a_paddle_style_recognizer_with_shared_weights_quantizes_with_one_command(tmp_path: Path) -> None:
    source = paddle_recognizer(tmp_path / "ppocr_rec.onnx")
    out = tmp_path / "ppocr_rec-int8.onnx"

    done = kitfleet(tmp_path / "home", "quantize", str(source), str(out), "--runs", "3")

    assert done.returncode == 0, done.stderr
    assert "to be an initializer" not in done.stdout + done.stderr
    assert "note: weights read directly: 1 Constant node(s)" in done.stdout
    assert "stay FP32" not in done.stdout  # every Conv and MatMul became INT8
    assert run_int8(out, (2, 3, 32, 64)).shape == (2, 16, 37)
    assert load_package(out).precision == "int8"


def test_nodes_left_fp32_are_named_in_the_output_and_the_report(tmp_path: Path) -> None:
    source = correlation_head(tmp_path / "tracker.onnx")
    out, report = tmp_path / "tracker-int8.onnx", tmp_path / "tracker.md"

    done = kitfleet(
        tmp_path / "home", "quantize", str(source), str(out), "--runs", "3", "--report", str(report)
    )
    as_json = kitfleet(tmp_path / "home", "quantize", str(source), str(out), "--runs", "3", "--json")

    assert done.returncode == 0, done.stderr
    kept = "1 node(s) with weights stay FP32: Conv 'xcorr' (its weight is computed in the graph, not stored)"
    assert f"note: {kept}" in done.stdout
    assert kept in report.read_text()
    assert json.loads(as_json.stdout)["kept_float"] == [
        {"name": "xcorr", "op_type": "Conv", "reason": "its weight is computed in the graph, not stored"}
    ]


def test_one_recommendation_in_the_output_the_json_and_the_report(tmp_path: Path) -> None:
    out, report = tmp_path / "digits-int8.onnx", tmp_path / "digits.md"

    done = kitfleet(
        tmp_path / "home", "quantize", str(DIGITS), str(out), "--runs", "5", "--report", str(report)
    )
    data = json.loads(
        kitfleet(tmp_path / "home", "quantize", str(DIGITS), str(out), "--runs", "5", "--json").stdout
    )

    assert done.returncode == 0, done.stderr
    advice = [line for line in done.stdout.splitlines() if line.startswith("Recommendation: ")]
    assert len(advice) == 1
    assert advice[0] in report.read_text()
    assert "ready" not in done.stdout
    assert "markedly" not in done.stdout
    recommendation = data["report"]["recommendation"]
    assert recommendation["use"] in {"int8", "fp32", "measure"}
    assert recommendation["text"].startswith("Recommendation: ")
    ratio = data["report"]["speed_ratio"]  # the verdict follows the measured ratio, whatever it was
    if ratio < 0.95:
        assert recommendation["use"] == "fp32"
        assert "slower than FP32" in recommendation["text"]
    elif ratio >= 1.1:
        assert recommendation["use"] == "int8"


def test_fp16_mode_writes_an_fp16_package_that_agrees_with_fp32(tmp_path: Path) -> None:
    out = tmp_path / "digits-fp16.onnx"

    done = kitfleet(tmp_path / "home", "quantize", str(DIGITS), str(out), "--mode", "fp16", "--runs", "3")

    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (FP16, FP32 inputs and outputs" in done.stdout
    assert "FP16 vs FP32" in done.stdout
    assert "7-bit" not in done.stdout  # INT8's weight note has no place here
    manifest = load_package(out)
    assert (manifest.precision, manifest.version) == ("fp16", "1.0-fp16")
    assert manifest.figures["size_ratio_vs_fp32"] > 1.5
    assert any(t.data_type == TensorProto.FLOAT16 for t in onnx.load(str(out)).graph.initializer)
    np.testing.assert_allclose(run_int8(out, (3, 1, 32, 32)), run_int8(DIGITS, (3, 1, 32, 32)), atol=1e-2)
