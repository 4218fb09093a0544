"""Getting an exported graph ready for ONNX Runtime's quantizer.

ONNX Runtime's quantizer wants each Conv/Gemm weight stored as an initializer. Exporters often
reach the weight through nodes instead: paddle2onnx writes `Constant` nodes for parameters and an
`Identity` per layer that shares one, and some exporters record tensor shapes (`value_info`) that
disagree with the graph. The latter makes ONNX Runtime's own pre-processing give up on its
optimisation step, which it only logs, and the quantizer then fails with "Expected … to be an
initializer". So: settle the weights ourselves (pure ONNX), drop the recorded shapes (shape
inference recomputes them), then run ONNX Runtime's pre-processing, stepping down from symbolic
shape inference to ONNX's, and noting each step that could not run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process

__all__ = ["pre_process", "settle_weights"]

# From most to least thorough. Symbolic shape inference needs sympy and gives up on some graphs;
# ONNX's own shape inference is what the bundled models were checked with.
_STEPS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("symbolic shape inference", {}),
    ("ONNX shape inference", {"skip_symbolic_shape": True}),
    ("graph optimisation only", {"skip_symbolic_shape": True, "skip_onnx_shape": True}),
)


def settle_weights(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """`model` with Constant-node tensors as initializers, Identity-shared weights read directly,
    and the exporter's recorded intermediate shapes dropped (main graph only); `model` is not changed."""
    model = _copy(model)
    graph = model.graph
    constants = _constants_to_initializers(graph)
    aliases = _identity_aliases(graph)
    if aliases:
        _rename_inputs(graph, aliases)
        kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in aliases)]
        del graph.node[:]
        graph.node.extend(kept)
    del graph.value_info[:]  # shape inference recomputes them
    if constants or aliases:
        notes.append(
            f"weights read directly: {constants} Constant node(s) made initializers, "
            f"{len(aliases)} shared weight(s) passed through Identity read from their source"
        )
    return model


def pre_process(source: Path, target: Path, notes: list[str]) -> bool:
    """ONNX Runtime's quantization pre-processing of `source` into `target`; False if none could run."""
    for number, (what, options) in enumerate(_STEPS):
        with _optimiser_errors() as failed:
            try:
                quant_pre_process(str(source), str(target), **options)
            except Exception as exc:  # each step fails with its own types; try the next
                if number:  # the first step failing only for want of sympy is normal, not news
                    notes.append(
                        f"pre-processing with {what} did not run on this model "
                        "(the comparison with FP32 shows whether that matters)"
                    )
                elif not isinstance(exc, ImportError):
                    notes.append(f"{what} did not run on this model; used a simpler shape inference")
                continue
        if failed:
            notes.append(
                f"ONNX Runtime's graph optimisation failed on this model ({failed[0][:200]}); "
                "quantized without it"
            )
        return True
    notes.append("ONNX Runtime's pre-processing could not run on this model; quantized the graph as exported")
    return False


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    return copied


def _constants_to_initializers(graph: onnx.GraphProto) -> int:
    """Move `Constant` nodes holding a tensor into the initializers; how many were moved."""
    moved = [n for n in graph.node if n.op_type == "Constant" and _tensor_attribute(n) is not None]
    for node in moved:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(_tensor_attribute(node))
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        graph.node.remove(node)
    return len(moved)


def _tensor_attribute(node: onnx.NodeProto) -> onnx.TensorProto | None:
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
            tensor: onnx.TensorProto = attribute.t
            return tensor
    return None


def _identity_aliases(graph: onnx.GraphProto) -> dict[str, str]:
    """Outputs of Identity nodes over initializers (not graph outputs) → the initializer's name."""
    stored = {tensor.name for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    return {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "Identity" and node.input[0] in stored and node.output[0] not in outputs
    }


def _rename_inputs(graph: onnx.GraphProto, aliases: dict[str, str]) -> None:
    """Point every reader of an alias at its source, in subgraphs too (they see outer names)."""
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in aliases:
                node.input[index] = aliases[name]
        for attribute in node.attribute:
            for subgraph in [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]:
                _rename_inputs(subgraph, aliases)


@contextlib.contextmanager
def _optimiser_errors() -> Iterator[list[str]]:
    """Collect what ONNX Runtime's pre-processing logs instead of raising when its optimiser fails."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "Traceback" in text:  # the second record: the optimiser's traceback; keep its last line
                messages.append((text.strip().splitlines() or [""])[-1])

    logger = logging.getLogger("onnxruntime.quantization.shape_inference")
    handler, propagate = _Collect(logging.ERROR), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # the technician sees our note, not ONNX Runtime's traceback
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
