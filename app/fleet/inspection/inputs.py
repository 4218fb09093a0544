"""The model's image input: which input, its layout, its height and width, its element type."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from agent.wire import InputSpec, Task
from app.fleet.inspection.facts import Facts, InspectionError, Tensor

__all__ = ["ImageInput", "image_input", "input_spec"]

_DTYPES = ("float32", "float16", "uint8", "int8")
_SIZE_HINT = (
    "give the input size: --input-size HxW (e.g. 640x640), or the Input size field in the Deploy window"
)


@dataclass(frozen=True)
class ImageInput:
    tensor: Tensor
    layout: str  # NCHW | NHWC
    channels: int
    why: str

    @property
    def size(self) -> tuple[int | None, int | None]:
        dims = self.tensor.dims
        return (dims[2], dims[3]) if self.layout == "NCHW" else (dims[1], dims[2])


def image_input(facts: Facts, task: Task | None) -> ImageInput:
    """The one input that looks like an image; `--task raw` takes the first of several."""
    images = [found for t in facts.inputs if (found := _as_image(t)) is not None]
    names = ", ".join(t.describe() for t in facts.inputs)
    if not images:
        raise InspectionError(
            f"{facts.path.name} has no image input ([N, 3, H, W] or [N, H, W, 3], 1 or 3 channels); "
            f"its inputs: {names or 'none'}. kitfleet infers manifests for image models only: "
            "write MODEL.manifest.json beside the model for this one"
        )
    if len(images) > 1 and task != "raw":
        raise InspectionError(
            f"{facts.path.name} has {len(images)} image-like inputs ({names}); kitfleet cannot tell "
            "which one takes the picture: give --task raw to deploy it as a raw model"
        )
    if len(facts.inputs) > 1 and task != "raw":
        raise InspectionError(
            f"{facts.path.name} has {len(facts.inputs)} inputs ({names}); a kit feeds a model one "
            "image: re-export it with the image as its only input, or give --task raw"
        )
    chosen = images[0]
    if chosen.tensor.dtype not in _DTYPES:
        raise InspectionError(
            f"input {chosen.tensor.describe()} has element type {chosen.tensor.dtype}; kits feed "
            f"{', '.join(_DTYPES)}: re-export the model with a float32 input"
        )
    return chosen


def _as_image(tensor: Tensor) -> ImageInput | None:
    dims = tensor.dims
    if len(dims) != 4:
        return None
    if dims[1] in (1, 3):
        return ImageInput(tensor, "NCHW", int(dims[1] or 3), f"{tensor.shape_text()}: channels second")
    if dims[3] in (1, 3):
        return ImageInput(tensor, "NHWC", int(dims[3] or 3), f"{tensor.shape_text()}: channels last")
    return None


def input_spec(facts: Facts, image: ImageInput, size: tuple[int, int] | None) -> tuple[InputSpec, str]:
    """The input spec and why its height and width are what they are."""
    (height, width), why = _size(facts, image, size)
    spec = InputSpec(
        name=image.tensor.name,
        layout=image.layout,  # type: ignore[arg-type]  # NCHW | NHWC by construction
        height=height,
        width=width,
        channels=image.channels,  # type: ignore[arg-type]  # 1 | 3 by construction
        dtype=image.tensor.dtype,  # type: ignore[arg-type]  # checked against _DTYPES
    )
    return spec, why


def _size(facts: Facts, image: ImageInput, given: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
    fixed = image.size
    if given is not None:
        clash = [(g, f) for g, f in zip(given, fixed, strict=True) if f is not None and g != f]
        if clash:
            raise InspectionError(
                f"the model's input {image.tensor.describe()} is fixed at "
                f"{fixed[0] or '?'}x{fixed[1] or '?'}, not {given[0]}x{given[1]}: leave --input-size out "
                "or give the model's own size"
            )
        return given, "from --input-size" if None in fixed else "fixed in the model (as given)"
    if fixed[0] is not None and fixed[1] is not None:
        return (fixed[0], fixed[1]), "fixed in the model"
    exported = _metadata_size(facts)
    if exported is not None and all(f is None or f == e for f, e in zip(fixed, exported, strict=True)):
        return (
            exported,
            f"the model leaves it free; the exporter's metadata says imgsz {facts.metadata['imgsz']}",
        )
    raise InspectionError(
        f"{facts.path.name} leaves its input height and width free ({image.tensor.describe()}) and "
        f"names no size in its metadata; {_SIZE_HINT}"
    )


def _metadata_size(facts: Facts) -> tuple[int, int] | None:
    """Ultralytics writes `imgsz` as '[640, 640]' (height, width) or '640'."""
    text = facts.metadata.get("imgsz", "")
    if not text or len(text) > 64:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, int):
        value = [value, value]
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and 1 <= v <= 8192 for v in value)
    ):
        return int(value[0]), int(value[1])
    return None
