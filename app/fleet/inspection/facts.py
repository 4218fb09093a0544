"""What an ONNX file says about itself, read once into plain data: inputs, outputs, metadata.

The rest of the inspection reasons over these facts only, so it never needs `onnx` (slow to
import) and its rules can be tested on shapes written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.toolkit import onnxfile
from agent.toolkit.errors import Refusal
from app.fleet.models import ModelPackageError

__all__ = ["Facts", "InspectionError", "Tensor", "read_facts"]

# onnx.TensorProto element types by number (so `onnx` is not needed to name them)
_ELEMENT_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}
_EXPORT_HINT = "export the model to ONNX again (e.g. torch.onnx.export) and choose the .onnx file itself"


class InspectionError(ModelPackageError):
    """The model cannot be described without help; str() says which flag or field to give."""


@dataclass(frozen=True)
class Tensor:
    """One graph input or output: its element type and dimensions (None where the model leaves it free)."""

    name: str
    dtype: str
    dims: tuple[int | None, ...]

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.dims) + "]"

    def describe(self) -> str:
        return f"{self.name} {self.shape_text()} {self.dtype}"


@dataclass(frozen=True)
class Facts:
    path: Path
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    doc_string: str = ""
    producer: str = ""
    model_version: int = 0
    opset: int = 0
    producers: dict[str, str] = field(default_factory=dict)  # output name -> the op that makes it

    @property
    def ultralytics(self) -> bool:
        """Ultralytics writes its name as the author and names, stride, imgsz and task as metadata."""
        author = self.metadata.get("author", "").lower()
        return "ultralytics" in author or {"names", "stride", "imgsz"} <= self.metadata.keys()


def read_facts(path: Path) -> Facts:
    """Read `path` as one self-contained ONNX model, or refuse saying what to fix."""
    if not path.is_file():
        raise InspectionError(f"{path} does not exist or is not a file")
    try:  # size first, then the parse and the external-data check, as a kit does
        onnxfile.check_self_contained(path)
    except Refusal as exc:
        if exc.error == "not_onnx":
            raise InspectionError(f"{path.name} is not an ONNX model; {_EXPORT_HINT}") from None
        raise InspectionError(f"{exc.message}: {exc.hint}" if exc.hint else exc.message) from None
    import onnx  # seconds to import: only when a model is inspected

    model = onnx.load(str(path), load_external_data=False)
    if not model.graph.node or not model.opset_import:
        raise InspectionError(f"{path.name} is not an ONNX model (it holds no graph); {_EXPORT_HINT}")
    return _facts(path, model)


def _facts(path: Path, model: Any) -> Facts:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    producers = {out: node.op_type for node in graph.node for out in node.output}
    return Facts(
        path=path,
        inputs=tuple(_tensor(i) for i in graph.input if i.name not in initializers),
        outputs=tuple(_tensor(o) for o in graph.output),
        metadata={p.key: p.value for p in model.metadata_props},
        doc_string=(model.doc_string or graph.doc_string or "").strip(),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        model_version=int(model.model_version),
        opset=max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
        producers={o.name: producers.get(o.name, "") for o in graph.output},
    )


def _tensor(value: Any) -> Tensor:
    tensor_type = value.type.tensor_type
    dims = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim
    )
    return Tensor(
        value.name, _ELEMENT_TYPES.get(tensor_type.elem_type, f"type-{tensor_type.elem_type}"), dims
    )
