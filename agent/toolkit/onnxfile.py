"""ONNX files as a kit takes them: one self-contained file, its tensors naming no other file.

A tensor may keep its data in another file (ONNX "external data", `location` = any path). ONNX
Runtime would read that file from the disk it runs on (older releases from anywhere on it, the
kit's TLS key for one), and a raw model would answer its bytes. So the kit refuses such a model
before ONNX Runtime sees it, and the app never sends one; both call `check_self_contained`.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

from agent.toolkit.errors import BadInput, Invalid, TooLarge

__all__ = ["MAX_ONNX_BYTES", "check_self_contained", "external_data_of"]

# A model package is one self-contained ONNX file. Protobuf holds at most 2 GiB, so a larger file
# cannot be one: its weights would live in other files (ONNX "external data").
MAX_ONNX_BYTES = (2 << 30) - 1


_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL


def external_data_of(model: Any) -> list[tuple[str, str]]:
    """(tensor name, file it names) for every tensor of an ONNX ModelProto kept in another file.

    ONNX Runtime would read that file from the kit's disk (older releases from anywhere on it),
    so kits refuse such a model and the app never sends one. Every nested message is walked, so
    a tensor is found wherever it sits: initializers, Constant attributes, sparse initializers,
    If/Loop/Scan bodies, function bodies, training graphs. Parse the model without loading its
    external data (`onnx.load(path, load_external_data=False)`).
    """
    found: set[tuple[str, str]] = set()
    stack = [model]
    while stack:  # a loop, not recursion: subgraphs may nest deeper than Python's stack
        message = stack.pop()
        if message.DESCRIPTOR.name == "TensorProto" and (
            message.data_location == _EXTERNAL or len(message.external_data)
        ):
            location = next((e.value for e in message.external_data if e.key == "location"), "")
            found.add((message.name, location))
        stack.extend(_submessages(message))
    return sorted(found)


def _submessages(message: Any) -> list[Any]:
    """The messages set in `message`'s fields. Only message-typed fields are looked at: asking
    for every set field (`ListFields`) would copy each tensor's `raw_data`, 100 MB for a
    100 MB model, for nothing."""
    found: list[Any] = []
    for field in _message_fields(message.DESCRIPTOR):
        if _is_repeated(field):
            value = getattr(message, field.name)
            found.extend(value.values() if field.message_type.GetOptions().map_entry else value)
        elif message.HasField(field.name):  # never an unset one: its default would be walked
            found.append(getattr(message, field.name))
    return [item for item in found if hasattr(item, "ListFields")]


_FIELDS: dict[str, list[Any]] = {}


def _message_fields(descriptor: Any) -> list[Any]:
    fields = _FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = _FIELDS[descriptor.full_name] = [f for f in descriptor.fields if f.message_type]
    return fields


def _is_repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` before it
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def check_self_contained(path: Path, data: bytes | None = None) -> None:
    """Refuse (TooLarge, BadInput, Invalid) a file that is not one self-contained ONNX model.
    Parsed as onnx's ModelProto; nothing it names is read. `data` is the file's bytes when the
    caller has read them already (to hash them, or to give ONNX Runtime exactly what was checked)."""
    size = path.stat().st_size if data is None else len(data)
    if size > MAX_ONNX_BYTES:  # protobuf cannot hold it: such a model keeps its weights elsewhere
        raise TooLarge(
            "model_too_large",
            f"{path.name} has {size} bytes; an ONNX file holds at most "
            f"{MAX_ONNX_BYTES}, and kits take a model as one file",
            "quantize it (`kitfleet quantize`) or export a smaller model",
        )
    model = _model_proto()()
    try:
        model.ParseFromString(path.read_bytes() if data is None else data)
    except Exception:  # protobuf raises several types on a file that is not ONNX
        raise BadInput(
            "not_onnx",
            f"{path.name} is not an ONNX model (it could not be parsed: damaged, or another format)",
            "export the model to ONNX again",
        ) from None
    found = external_data_of(model)
    del model  # ONNX Runtime loads it next: do not hold two copies
    if found:
        name, location = found[0]
        more = f" (and {len(found) - 1} more tensors)" if len(found) > 1 else ""
        raise Invalid(
            "external_data",
            f"{path.name} keeps tensor {name!r}{more} in another file "
            f"({location!r}); a kit takes a model as one file and reads nothing beside it",
            "save it as one file with onnx.save_model(onnx.load(path), path, "
            "save_as_external_data=False), re-create its manifest, then deploy again",
        )


def preload() -> None:
    """Load the parser now, in a process kept ready for checks, instead of in the first check."""
    _model_proto()


@functools.cache
def _model_proto() -> Any:
    """onnx's ModelProto class from its generated protobuf module alone: `import onnx` costs
    seconds (its ml_dtypes) in every verification, and only this class is needed."""
    if "onnx" in sys.modules:  # already paid for (a quantize job): the same class
        return sys.modules["onnx"].ModelProto
    package = importlib.util.find_spec("onnx")  # found, not imported
    generated = Path(package.origin).with_name("onnx_ml_pb2.py") if package and package.origin else None
    spec = (
        importlib.util.spec_from_file_location("_onnx_ml_pb2", generated)
        if generated and generated.is_file()
        else None
    )
    if spec is None or spec.loader is None:
        import onnx  # a layout this does not know: the slow way

        return onnx.ModelProto
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelProto
