"""ONNX files as quantization sees them: loaded or refused clearly, their image input, CPU sessions.

Real exports often leave the batch and the picture size free (`[N, 3, H, W]`); a manifest needs a
fixed height and width, so a caller that knows the size the kit will feed passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import ValidationError

from agent.toolkit.hashing import sha256_file
from agent.toolkit.sessions import open_session
from agent.toolkit.sessions import seeded_input as toolkit_seeded_input
from agent.wire import InputSpec, Manifest
from app.fleet.errors import Error
from app.fleet.models import check_self_contained, load_package, manifest_path

__all__ = [
    "ImageInput",
    "QuantizeError",
    "check_self_contained",
    "cpu_session",
    "image_input_of",
    "input_spec_of",
    "manifest_beside",
    "read_model",
    "seeded_input",
]

_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT8: "int8",
}
_EXPORT_HINT = "export the model to ONNX first (e.g. torch.onnx.export)"


class QuantizeError(Error):
    """The model, the images or the options cannot be quantized; str() says how to fix it."""


@dataclass(frozen=True)
class ImageInput:
    """The model's first input when it looks like an image; height and width None where free."""

    name: str
    layout: str
    channels: int
    height: int | None
    width: int | None
    dtype: str

    @property
    def free_size(self) -> bool:
        return self.height is None or self.width is None


def read_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX model or say clearly that the file is not one."""
    if not path.is_file():
        raise QuantizeError(f"{path} does not exist or is not a file")
    try:
        model = onnx.load(str(path))
    except Exception:  # protobuf and onnx raise many types on a file that is not ONNX
        raise QuantizeError(f"{path} is not an ONNX model (it could not be parsed); {_EXPORT_HINT}") from None
    if not model.graph.node or not model.opset_import:
        raise QuantizeError(f"{path} is not an ONNX model (it holds no graph); {_EXPORT_HINT}")
    return model


def image_input_of(model: onnx.ModelProto) -> ImageInput | None:
    """The first input as [N, 1|3, H, W] or [N, H, W, 1|3], or None when it is not image-like."""
    initializers = {i.name for i in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in initializers), None)
    if first is None or first.type.tensor_type.elem_type not in _DTYPES:
        return None
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in first.type.tensor_type.shape.dim
    ]
    if len(dims) != 4:
        return None
    if dims[1] in (1, 3):
        layout, channels, height, width = "NCHW", dims[1], dims[2], dims[3]
    elif dims[3] in (1, 3):
        layout, channels, height, width = "NHWC", dims[3], dims[1], dims[2]
    else:
        return None
    return ImageInput(first.name, layout, channels, height, width, _DTYPES[first.type.tensor_type.elem_type])


def input_spec_of(model: onnx.ModelProto, size: tuple[int, int] | None = None) -> InputSpec | None:
    """The first input as an image spec, or None if it is not one or its size is free and unknown.

    `size` (height, width) fills the dimensions the model leaves free; it must match fixed ones.
    """
    image = image_input_of(model)
    if image is None:
        return None
    if size is not None and not image.free_size and size != (image.height, image.width):
        raise QuantizeError(
            f"the model's input is fixed at {image.height}x{image.width}, not "
            f"{size[0]}x{size[1]}; leave the input size out or give "
            f"{image.height}x{image.width}"
        )
    height, width = (image.height, image.width) if size is None else size
    if height is None or width is None:
        return None
    return InputSpec.model_validate(
        {
            "name": image.name,
            "layout": image.layout,
            "height": height,
            "width": width,
            "channels": image.channels,
            "dtype": image.dtype,
        }
    )


def manifest_beside(model: Path) -> Manifest | None:
    """The checked manifest of `model`: `<stem>.manifest.json`, else `<name>.manifest.json`, else None."""
    if manifest_path(model).exists():
        return load_package(model)
    other = model.with_name(f"{model.name}.manifest.json")
    if not other.exists():
        return None
    try:
        manifest = Manifest.model_validate_json(other.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise QuantizeError(f"{other} is not a valid manifest: {problems}") from None
    if manifest.size_bytes != model.stat().st_size or manifest.sha256 != sha256_file(model):
        raise QuantizeError(
            f"{other.name} does not describe {model.name} (size or sha256 differ); "
            "re-create the manifest for this file"
        )
    return manifest


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A quiet CPU session (the toolkit's); `threads` 0 leaves ONNX Runtime's default."""
    try:
        return open_session(path, threads, cpu_only=True, quiet=True)[0]
    except Exception as exc:  # ORT raises its own exception types, all meaning "cannot run this"
        last_line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        raise QuantizeError(
            f"ONNX Runtime cannot load {path.name}: {last_line}; this model is not "
            "supported here (re-export it with standard ONNX operators)"
        ) from None


def seeded_input(
    session: ort.InferenceSession, dtype: str, seed: int, *, spec: InputSpec | None = None, batch: int = 1
) -> np.ndarray:
    """The toolkit's seeded input for the session's first input: free dimensions become `batch`
    (the first) and the spec's height and width; without a spec they become 1, as a kit's
    golden check feeds."""
    sizes = {}
    if spec is not None:
        sizes = {2: spec.height, 3: spec.width} if spec.layout == "NCHW" else {1: spec.height, 2: spec.width}
    return toolkit_seeded_input(session.get_inputs()[0], dtype, seed, sizes, batch)
