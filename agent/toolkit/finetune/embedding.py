"""Which tensor of a classifier is its embedding: the features its final Gemm/MatMul maps to
class scores. A head trained on that tensor replaces the final layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.toolkit.errors import Invalid

if TYPE_CHECKING:
    import onnx

__all__ = ["find_embedding"]

# Between the final layer and the output: ops that rescale or reshape scores without mixing
# the features the head would learn from.
_PASS_THROUGH = frozenset(
    {"Softmax", "LogSoftmax", "Sigmoid", "Identity", "Flatten", "Reshape", "Squeeze", "Cast", "Dropout"}
)
_FINAL = frozenset({"Gemm", "MatMul"})
_HINT = "name the embedding tensor (--embedding NAME: a 2-D feature tensor of the backbone)"


def find_embedding(model: onnx.ModelProto, name: str | None = None) -> str:
    """The embedding tensor's name: `name` once checked, else the input of the final Gemm/MatMul.

    Refuses (Invalid) a graph with no such layer: a detector, a segmenter, or a classifier
    whose scores come from something a linear head cannot replace."""
    graph = model.graph
    produced = {out: node for node in graph.node for out in node.output}
    if name is not None:
        if name not in produced:
            raise Invalid(
                "no_such_embedding",
                f"the backbone has no tensor {name!r} computed by its graph",
                "give the name of a node's output (`kitfleet inspect MODEL.onnx` lists them), or "
                "leave --embedding out to use the input of the final Gemm/MatMul",
            )
        return name
    if len(graph.output) != 1:
        raise Invalid(
            "not_a_classifier_graph",
            f"the backbone has {len(graph.output)} outputs; a classifier has one (class scores), "
            "so this looks like a detector or a multi-head model",
            _HINT,
        )
    return _final_input(graph.output[0].name, produced, _constants(graph))


def _constants(graph: onnx.GraphProto) -> set[str]:
    """Tensors fixed by the file: initializers, Constant nodes, and what nodes compute from
    those alone (a weight exported behind a Transpose or a DequantizeLinear)."""
    names = {init.name for init in graph.initializer}
    for node in graph.node:  # topological order, as ONNX requires
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in names for name in inputs)):
            names.update(node.output)
    return names


def _transposes_features(node: onnx.NodeProto) -> bool:
    """A Gemm with transA reads its features along the other axis: no embedding rows to learn from."""
    return node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)


def _final_input(output: str, produced: dict[str, onnx.NodeProto], constants: set[str]) -> str:
    """Walk back from the output past score-only ops to the final Gemm/MatMul."""
    tensor, seen = output, 0
    while (node := produced.get(tensor)) is not None and seen < len(produced):
        seen += 1
        if node.op_type in _FINAL and len(node.input) >= 2 and node.input[1] in constants:
            if node.input[0] in constants or _transposes_features(node):
                break
            return str(node.input[0])
        if node.op_type == "Add" and len(node.input) == 2 and node.input[1] in constants:
            tensor = node.input[0]  # a MatMul's bias
        elif node.op_type == "Add" and len(node.input) == 2 and node.input[0] in constants:
            tensor = node.input[1]
        elif node.op_type in _PASS_THROUGH and node.input:
            tensor = node.input[0]
        else:
            raise Invalid(
                "no_embedding_found",
                f"the backbone's output {output!r} comes from a {node.op_type} node "
                f"({node.name or tensor!r}), "
                "not from a final Gemm/MatMul with fixed weights: it looks like a detector or a "
                "model a linear head cannot extend",
                _HINT,
            )
    raise Invalid(
        "no_embedding_found",
        f"no final Gemm/MatMul with fixed weights computes the backbone's output {output!r}",
        _HINT,
    )
