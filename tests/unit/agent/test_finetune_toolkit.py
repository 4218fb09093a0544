"""The fine-tune toolkit on real graphs: the bundled digits CNN and the YOLO detector, the tests'
own small ONNX models, numpy training and ONNX Runtime running the composed model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from agent.toolkit.errors import Invalid, TooLarge
from agent.toolkit.finetune.compose import OUTPUT, compose, with_outputs
from agent.toolkit.finetune.embedding import find_embedding
from agent.toolkit.finetune.head import softmax, train_head
from agent.toolkit.finetune.labelled import check_counts, check_label, csv_rows, stratified_split
from agent.toolkit.finetune.scores import confusion, per_class
from resources import models_dir
from tests.onnx_models import classifier, conv_classifier

DIGITS = models_dir() / "digits-cnn-fp32.onnx"
YOLO = models_dir() / "shapes-yolo-fp32.onnx"


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# -- the embedding -------------------------------------------------------------------------------


def test_digits_embedding_is_the_input_of_its_final_gemm() -> None:
    model = onnx.load(str(DIGITS))
    final = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    assert find_embedding(model) == final.input[0] == "view"


def test_embedding_found_past_softmax_and_matmul(tmp_path: Path) -> None:
    classifier(tmp_path / "tiny.onnx")  # Flatten → MatMul → Softmax
    assert find_embedding(onnx.load(str(tmp_path / "tiny.onnx"))) == "flat"
    conv = conv_classifier(tmp_path / "conv.onnx")
    assert find_embedding(onnx.load(str(conv))) == "flat"


def test_detector_is_refused() -> None:
    with pytest.raises(Invalid) as caught:
        find_embedding(onnx.load(str(YOLO)))
    assert caught.value.error == "no_embedding_found"
    assert "detector" in caught.value.message


def test_graph_without_weights_layer_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    with pytest.raises(Invalid, match="GlobalAveragePool"):
        find_embedding(helper.make_model(graph))


def test_named_embedding_must_be_computed_by_the_graph() -> None:
    model = onnx.load(str(DIGITS))
    assert find_embedding(model, "mean") == "mean"
    for wrong in ("input", "14.weight", "nothing"):
        with pytest.raises(Invalid) as caught:
            find_embedding(model, wrong)
        assert caught.value.error == "no_such_embedding"


# -- names, CSV and split ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["..", "../x", "a/b", "a\\b", ".hidden", "", "x\n", " pad", "a b", "a+b", "a" * 65]
)
def test_odd_class_names_are_refused(bad: str) -> None:
    with pytest.raises(Invalid):
        check_label(bad, "here")


def test_plain_class_names_pass() -> None:
    for good in ("cat", "Circle_2", "a.b_c-d", "7"):
        assert check_label(good, "here") == good


def test_csv_rows_skip_the_header_and_refuse_traversal() -> None:
    assert csv_rows(b"file,label\nimgs/a.png,cat\nb.png,dog\n", 10) == [
        ("imgs/a.png", "cat"),
        ("b.png", "dog"),
    ]
    for row in (b"../a.png,cat\n", b"/etc/passwd,cat\n", b"a.png,../cat\n", b"a.png\n"):
        with pytest.raises(Invalid):
            csv_rows(row, 10)
    with pytest.raises(TooLarge):
        csv_rows(b"a.png,cat\n" * 11, 10)


def test_counts_refuse_one_class_and_small_classes() -> None:
    assert check_counts(["b", "a", "a", "b"], 2) == ["a", "b"]
    with pytest.raises(Invalid, match="only class 'a'"):
        check_counts(["a"] * 10, 2)
    with pytest.raises(Invalid, match=r"b \(1\)"):
        check_counts(["a"] * 5 + ["b"], 2)


def test_split_is_stratified_seeded_and_refuses_an_empty_validation_class() -> None:
    targets = np.array([0] * 10 + [1] * 5 + [2] * 20)
    train, val = stratified_split(targets, 0.2, seed=3)
    assert sorted(np.bincount(targets[val]).tolist()) == [1, 2, 4]
    assert set(train).isdisjoint(val)
    assert len(train) + len(val) == len(targets)
    again = stratified_split(targets, 0.2, seed=3)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(stratified_split(targets, 0.2, seed=4)[1], val)
    with pytest.raises(Invalid) as caught:
        stratified_split(targets, 0.09, seed=0)  # round(0.45) = 0 for the class of 5
    assert caught.value.error == "class_missing_from_split"


# -- the head ------------------------------------------------------------------------------------


def _blobs(seed: int, n: int = 60, dims: int = 12, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dims)) + 50  # far from zero: standardisation matters
    targets = np.repeat(np.arange(classes), n // classes)
    return centres[targets] + rng.normal(0, 1, (len(targets), dims)), targets


def test_head_separates_classes_and_is_deterministic() -> None:
    x, y = _blobs(0)
    head = train_head(x, y, 3, l2=1e-3, epochs=200)
    assert np.mean(head.probabilities(x).argmax(axis=1) == y) == 1.0
    again = train_head(x, y, 3, l2=1e-3, epochs=200)
    assert np.array_equal(head.weights, again.weights)
    assert np.array_equal(head.bias, again.bias)


def test_more_epochs_lower_the_objective_and_l2_shrinks_weights() -> None:
    x, y = _blobs(2)
    short, long = train_head(x, y, 3, 1e-2, 5), train_head(x, y, 3, 1e-2, 300)
    assert long.loss < short.loss
    loose, tight = train_head(x, y, 3, 1e-3, 200), train_head(x, y, 3, 1.0, 200)
    assert np.linalg.norm(tight.weights) < np.linalg.norm(loose.weights)


def test_head_reaches_the_optimum_of_a_small_problem() -> None:
    """At the optimum the gradient of mean CE + l2/2‖W‖² vanishes (standardised space)."""
    x, y = _blobs(5, n=30, dims=4)
    l2 = 0.1
    head = train_head(x, y, 3, l2, 2000)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    w = head.weights * scale[:, None]  # back to standardised features
    z = (x - mean) / scale
    error = (softmax(z @ w + head.bias + mean @ head.weights) - np.eye(3)[y]) / len(z)
    assert np.abs(z.T @ error + l2 * w).max() < 1e-5
    assert np.abs(error.sum(axis=0)).max() < 1e-5


def test_scores_count_rows_as_actual() -> None:
    matrix = confusion(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    scores = per_class(matrix, ["a", "b", "c"])
    assert scores["b"] == {"precision": round(2 / 3, 6), "recall": round(2 / 3, 6), "support": 3}
    assert scores["c"] == {"precision": None, "recall": None, "support": 0}


# -- composition ---------------------------------------------------------------------------------


def test_composed_model_is_backbone_embedding_then_the_head() -> None:
    backbone = onnx.load(str(DIGITS))
    rng = np.random.default_rng(0)
    images = rng.random((6, 1, 32, 32)).astype(np.float32)
    extract = _session(with_outputs(backbone, ["view", "logits"]))
    features, logits = extract.run(None, {"input": images})
    own = _session(backbone).run(None, {"input": images})[0]
    assert np.allclose(logits, own, atol=1e-5)  # the extraction model still answers as the backbone
    weights = rng.normal(0, 0.1, (features.shape[1], 3)).astype(np.float32)
    bias = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    model = compose(backbone, "view", weights, bias, ["a", "b", "c"], "digits-cnn 1.0")
    session = _session(model)
    assert [o.name for o in session.get_outputs()] == [OUTPUT]
    got = session.run(None, {"input": images})[0]
    expected = softmax(features.astype(np.float64) @ weights + bias)
    assert got.shape == (6, 3)
    assert np.allclose(got, expected, atol=1e-5)
    assert [op.version for op in model.opset_import] == [op.version for op in backbone.opset_import]
    assert "14.weight" not in {i.name for i in model.graph.initializer}  # the old head is gone
    assert any(p.key == "kitfleet.fine_tune" and '"a"' in p.value for p in model.metadata_props)


def test_composed_head_on_a_4d_embedding_is_flattened(tmp_path: Path) -> None:
    backbone = onnx.load(str(conv_classifier(tmp_path / "conv.onnx")))
    images = np.random.default_rng(1).random((3, 3, 16, 16)).astype(np.float32)
    pooled = _session(with_outputs(backbone, ["pooled"])).run(None, {"image": images})[0]
    assert pooled.ndim == 4
    weights = np.ones((16, 2), dtype=np.float32)
    model = compose(backbone, "pooled", weights, np.zeros(2, np.float32), ["x", "y"], "conv")
    got = _session(model).run(None, {"image": images})[0]
    assert np.allclose(got, softmax(pooled.reshape(3, -1).astype(np.float64) @ weights), atol=1e-5)


def test_head_names_never_clash_with_the_backbone() -> None:
    w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "head.weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "head.weight"], ["probabilities"])],
        "clash",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [w],
    )
    backbone = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    relu = helper.make_node("Relu", ["x"], ["emb"])
    backbone.graph.node.insert(0, relu)
    backbone.graph.node[1].input[0] = "emb"
    model = compose(
        backbone, "emb", np.eye(2, dtype=np.float32) * 2, np.zeros(2, np.float32), ["p", "q"], "t"
    )
    x = np.array([[1.0, -1.0]], dtype=np.float32)
    assert np.allclose(_session(model).run(None, {"x": x})[0], softmax(np.array([[2.0, 0.0]])), atol=1e-6)


def test_a_weight_behind_a_transpose_is_still_a_weight() -> None:
    w = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "w")  # (2, 3) → (3, 2) → transB
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["features"]),
            helper.make_node("Transpose", ["w"], ["wt"]),
            helper.make_node("Gemm", ["features", "wt"], ["scores"], transB=1),
        ],
        "transposed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [w],
    )
    assert find_embedding(helper.make_model(graph)) == "features"
    graph.node[2].attribute.append(helper.make_attribute("transA", 1))
    with pytest.raises(Invalid):
        find_embedding(helper.make_model(graph))
