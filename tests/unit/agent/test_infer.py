"""run_inference and run_batch on small real ONNX models built here."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.models.infer import run_batch, run_inference
from agent.wire import DetectionSpec, InferResult, InputSpec, Manifest
from tests.onnx_models import classifier

# one 40×20 input's YOLO rows: (cx, cy, w, h, objectness, person, car)
TABLE = np.array(
    [
        [
            [10, 10, 8, 8, 0.9, 0.9, 0.1],
            [11, 10, 8, 8, 0.8, 0.9, 0.1],
            [10, 10, 8, 8, 0.9, 0.2, 0.8],
            [38, 18, 8, 8, 1.0, 0.5, 0.4],
        ]
    ],
    dtype=np.float32,
)
Model = tuple[Any, Manifest]


def detector(path: Path) -> Manifest:
    """A "detector" whose output is always TABLE (plus 0 × the image, so it depends on the input)."""
    zero = numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero")
    shape = numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "shape"], ["flat"]),
            helper.make_node("Mul", ["flat", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "table"], ["detections"]),
        ],
        "detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 20, 40])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["N", 4, 7])],
        [zero, shape, numpy_helper.from_array(TABLE, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return Manifest(
        name="boxes",
        version="2",
        task="detection",
        labels=["person", "car"],
        input=InputSpec(name="image", height=20, width=40),
        detection=DetectionSpec(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
    )


def load(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture
def tiny(tmp_path: Path) -> Model:
    manifest = classifier(tmp_path / "tiny.onnx", size=8, golden=False)
    return load(tmp_path / "tiny.onnx"), manifest


@pytest.fixture
def boxes(tmp_path: Path) -> Model:
    manifest = detector(tmp_path / "boxes.onnx")
    return load(tmp_path / "boxes.onnx"), manifest


def png(size: tuple[int, int]) -> bytes:
    return png_of(Image.new("RGB", size, (200, 40, 90)))


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def refused(call: Callable[[], object], status: int, error: str) -> Refusal:
    with pytest.raises(Refusal) as caught:
        call()
    assert (status_of(caught.value), caught.value.error) == (status, error), caught.value.message
    return caught.value


def answer(model: Model, payload: bytes, content_type: str | None, top_k: int = 5) -> InferResult:
    result, tensors = run_inference(*model, payload, content_type, top_k)
    assert tensors is None
    assert result is not None
    return result


def test_an_image_is_classified_and_the_answer_names_the_model(tiny: Model) -> None:
    result = answer(tiny, png((30, 20)), "image/png", top_k=3)
    manifest = tiny[1]
    assert (result.model, result.version, result.sha256, result.task) == (
        manifest.name,
        manifest.version,
        manifest.sha256,
        "classification",
    )
    assert result.latency_ms > 0
    assert result.classes is not None
    assert len(result.classes) == 3
    assert [c.score for c in result.classes] == sorted((c.score for c in result.classes), reverse=True)
    assert all(c.label == f"class-{c.index}" for c in result.classes)


def test_a_tensor_is_fed_as_is(tiny: Model) -> None:
    tensor = np.random.default_rng(1).random((1, 3, 8, 8)).astype(np.float32)
    expected = tiny[0].run(None, {"image": tensor})[0][0]
    for content_type in ("application/x-npy", "application/octet-stream", None):
        result = answer(tiny, npy(tensor), content_type, top_k=4)
        assert result.classes is not None
        assert [c.index for c in result.classes] == np.argsort(-expected).tolist()
        assert [c.score for c in result.classes] == pytest.approx(np.sort(expected)[::-1].tolist())


def test_detections_are_mapped_back_to_the_original_image(boxes: Model) -> None:
    result = answer(boxes, png((80, 60)), "image/png")
    assert result.task == "detection"
    assert result.detections is not None
    assert [(d.label, round(d.score, 4)) for d in result.detections] == [
        ("person", 0.81),
        ("car", 0.72),
        ("person", 0.5),
    ]
    assert result.detections[0].box == pytest.approx((12.0, 18.0, 28.0, 42.0))
    assert result.detections[2].box == pytest.approx((68.0, 42.0, 80.0, 60.0))


def test_a_raw_model_answers_its_outputs(tiny: Model) -> None:
    raw = (tiny[0], tiny[1].model_copy(update={"task": "raw"}))
    tensor = np.ones((2, 3, 8, 8), dtype=np.float32)
    result, tensors = run_inference(*raw, npy(tensor), "application/x-npy")
    assert result is None
    assert tensors is not None
    assert list(tensors) == ["scores"]
    assert tensors["scores"].shape == (2, 4)
    error = refused(lambda: run_inference(*raw, png((8, 8)), "image/png"), 415, "unsupported_media_type")
    assert error.hint is not None
    assert ".npy" in error.hint


@pytest.mark.parametrize(
    ("tensor", "error"),
    [
        (np.zeros((1, 3, 9, 8), dtype=np.float32), "wrong_shape"),
        (np.zeros((3, 8, 8), dtype=np.float32), "wrong_shape"),
        (np.zeros((2, 3, 8, 8), dtype=np.float32), "wrong_shape"),  # one answer needs one input
        (np.zeros((1, 3, 8, 8), dtype=np.float64), "wrong_dtype"),
    ],
)
def test_a_tensor_the_model_cannot_take_is_422(tiny: Model, tensor: np.ndarray, error: str) -> None:
    refused(lambda: run_inference(*tiny, npy(tensor), "application/x-npy"), 422, error)


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "error"),
    [
        (b"just some text", "image/png", 400, "bad_image"),
        (b"just some text", None, 400, "bad_image"),
        (b"GIF89a...", "image/gif", 415, "unsupported_media_type"),
        (b"just some text", "text/plain", 415, "unsupported_media_type"),
        (b"not an array", "application/x-npy", 400, "bad_tensor"),
    ],
)
def test_bad_payloads_are_refused(
    tiny: Model, payload: bytes, content_type: str | None, status: int, error: str
) -> None:
    refused(lambda: run_inference(*tiny, payload, content_type), status, error)


def images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in [(8, 8), (16, 12), (5, 9), (8, 8)]
    ]


def counting_runs(session: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    batches: list[int] = []
    real_run = session.run

    def run(names: Any, feeds: dict[str, np.ndarray]) -> Any:
        batches.append(len(next(iter(feeds.values()))))
        return real_run(names, feeds)

    monkeypatch.setattr(session, "run", run)
    return batches


def test_run_batch_equals_one_by_one_in_a_single_run(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    single = [answer(tiny, png_of(image), "image/png") for image in images()]
    batches = counting_runs(tiny[0], monkeypatch)
    batched = run_batch(*tiny, images())
    assert batches == [4]
    assert len(batched) == 4
    for one, many in zip(single, batched, strict=True):
        assert one.classes is not None
        assert many.classes is not None
        assert [c.index for c in many.classes] == [c.index for c in one.classes]
        assert [c.score for c in many.classes] == pytest.approx([c.score for c in one.classes], abs=1e-5)


def test_run_batch_goes_one_by_one_when_the_batch_is_fixed(
    tmp_path: Path, tiny: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = onnx.load(tmp_path / "tiny.onnx")
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, tmp_path / "fixed.onnx")
    fixed = load(tmp_path / "fixed.onnx")
    batches = counting_runs(fixed, monkeypatch)
    results = run_batch(fixed, tiny[1], images())
    assert batches == [1, 1, 1, 1]
    assert [r.classes for r in results] == [r.classes for r in run_batch(*tiny, images())]


def test_run_batch_refuses_a_raw_model_and_takes_an_empty_list(tiny: Model) -> None:
    assert run_batch(*tiny, []) == []
    raw = tiny[1].model_copy(update={"task": "raw"})
    refused(lambda: run_batch(tiny[0], raw, images()), 415, "unsupported_media_type")


RESOURCES = Path(__file__).resolve().parents[3] / "resources"
DIGITS = RESOURCES / "models" / "digits-cnn-fp32.onnx"


@pytest.mark.skipif(not DIGITS.exists(), reason="resources/models/digits-cnn-fp32.onnx not built yet")
def test_the_packaged_digits_model_reads_the_sample_digits() -> None:
    manifest_path = next(DIGITS.parent.glob("digits-cnn-fp32*.json"), None)
    samples = sorted((RESOURCES / "images").glob("digit-*.png"))
    if manifest_path is None or not samples:
        pytest.skip("the digits manifest or sample images are missing")
    manifest = Manifest.model_validate_json(manifest_path.read_text())
    session = load(DIGITS)
    for sample in samples:
        result = answer((session, manifest), sample.read_bytes(), "image/png", top_k=1)
        assert result.classes is not None
        expected = sample.stem.removeprefix("digit-").split("-")[0]  # digit-7.png, digit-7-b.png
        assert result.classes[0].label == expected, f"{sample.name}: {result.classes}"
