"""The new model: the backbone's graph cut at the embedding, then Flatten → Gemm(W, b) → Softmax.

The backbone's opset, IR version, functions and metadata are kept; the new head's tensors get
names no backbone node uses. `with_outputs` also makes the extraction model: the backbone with
the embedding (and its own scores) as outputs, so one run gives both."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = ["OUTPUT", "compose", "with_outputs"]

OUTPUT = "probabilities"
_META_KEY = "kitfleet.fine_tune"


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` whose outputs are `names` (tensors of its graph), unused nodes dropped."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    types = _types(model)
    del copy.graph.output[:]
    for name in names:
        copy.graph.output.append(types.get(name) or _float_info(name))
    _prune(copy.graph)
    return copy


def compose(
    backbone: onnx.ModelProto,
    embedding: str,
    weights: np.ndarray,
    bias: np.ndarray,
    labels: Sequence[str],
    origin: str,
) -> onnx.ModelProto:
    """Backbone up to `embedding`, then the head: softmax(flatten(embedding) @ weights + bias)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = with_outputs(backbone, [embedding])
    graph = model.graph
    taken = _names(graph)
    names = ("head.features", "head.weight", "head.bias", "head.logits")
    flat, w, b, logits = (_fresh(n, taken) for n in names)
    output = _fresh(OUTPUT, taken)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.ascontiguousarray(weights, dtype=np.float32), w),
            numpy_helper.from_array(np.ascontiguousarray(bias, dtype=np.float32), b),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Flatten", [embedding], [flat], name=flat, axis=1),
            helper.make_node("Gemm", [flat, w, b], [logits], name=logits),
            helper.make_node("Softmax", [logits], [output], name=output, axis=1),
        ]
    )
    del graph.output[:]
    shape = [_batch(graph), len(labels)]
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, shape))
    _ensure_default_opset(model)
    meta = {"labels": list(labels), "embedding": embedding, "from": origin}
    kept = [p for p in model.metadata_props if p.key != _META_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.append(onnx.StringStringEntryProto(key=_META_KEY, value=json.dumps(meta)))
    onnx.checker.check_model(model)
    return model


def _types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Each tensor's type and shape where shape inference knows them."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a nicety: outputs without a known type stay float
        inferred = model
    graph = inferred.graph
    infos = [*graph.value_info, *graph.output, *graph.input]
    return {v.name: v for v in infos if v.type.HasField("tensor_type")}


def _float_info(name: str) -> onnx.ValueInfoProto:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def _prune(graph: onnx.GraphProto) -> None:
    """Keep the nodes the outputs need, and only the initializers and value infos they use."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
            needed.update(_subgraph_inputs(node))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    _keep(graph.initializer, needed)
    _keep(graph.value_info, needed)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Names an If/Loop/Scan body reads from the outer graph (over-approximated: all it names)."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g, *attr.graphs] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                names.update(inner.input)
    return names


def _keep(items: Any, needed: set[str]) -> None:
    """Keep the entries of a protobuf repeated field (initializers, value infos) named in `needed`."""
    kept = [item for item in items if item.name in needed]
    del items[:]
    items.extend(kept)


def _names(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    return names | {o for node in graph.node for o in node.output} | {n.name for n in graph.node}


def _fresh(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}.{n}"
    taken.add(candidate)
    return candidate


def _batch(graph: onnx.GraphProto) -> str | int:
    """The first input's batch dimension, so the output says the same."""
    dims = graph.input[0].type.tensor_type.shape.dim if graph.input else []
    if not dims:
        return "N"
    first = dims[0]
    return first.dim_param or "N" if not first.HasField("dim_value") else int(first.dim_value)


def _ensure_default_opset(model: onnx.ModelProto) -> None:
    from onnx import helper

    if not any(op.domain in ("", "ai.onnx") for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", 13))
