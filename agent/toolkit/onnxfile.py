"""ONNX files as a kit takes them: one self-contained file, its tensors naming no other file.

A tensor may keep its data in another file (ONNX "external data", `location` = any path). ONNX
Runtime would read that file from the disk it runs on (older releases from anywhere on it, the
kit's TLS key for one), and a raw model would answer its bytes. So the kit refuses such a model
before ONNX Runtime sees it, and the app never sends one; both call `check_self_contained`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from agent.toolkit import protoscan
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
            found.add((_text(message.name), _text(location)))
        stack.extend(_submessages(message))
    return sorted(found)


def _text(value: str | bytes) -> str:
    """A string field as text: protobuf gives the bytes of one that is not UTF-8 (a damaged or
    hostile file), which would not sort with the others."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _submessages(message: Any) -> list[Any]:
    """The messages set in `message`'s fields. Only message-typed fields are looked at: asking
    for every set field (`ListFields`) would copy each tensor's `raw_data`, 100 MB for a
    100 MB model, for nothing."""
    found: list[Any] = []
    for field in _message_fields(message.DESCRIPTOR):
        if protoscan.is_repeated(field):
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


def check_self_contained(path: Path, data: bytes | None = None) -> None:
    """Refuse (TooLarge, BadInput, Invalid) a file that is not one self-contained ONNX model.
    Walked as onnx's ModelProto (`protoscan`: its tensors' data is stepped over, not copied);
    nothing it names is read. `data` is the file's bytes when the caller has read them already
    (to hash them, or to give ONNX Runtime exactly what was checked)."""
    size = path.stat().st_size if data is None else len(data)
    if size > MAX_ONNX_BYTES:  # protobuf cannot hold it: such a model keeps its weights elsewhere
        raise TooLarge(
            "model_too_large",
            f"{path.name} has {size} bytes; an ONNX file holds at most "
            f"{MAX_ONNX_BYTES}, and kits take a model as one file",
            "quantize it (`kitfleet quantize`) or export a smaller model",
        )
    try:
        found = _external_in(path, data)
    except (_NotProtobuf, OSError):
        raise BadInput(
            "not_onnx",
            f"{path.name} is not an ONNX model (it could not be parsed: damaged, or another format)",
            "export the model to ONNX again",
        ) from None
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


class _NotProtobuf(Exception):
    """The bytes are not an encoded protobuf message."""


def _external_in(path: Path, data: bytes | None) -> list[tuple[str, str]]:
    """`external_data_of` the model in `data` (or the file), walked (`protoscan`) and parsed
    only when it has too many fields to walk. Raises _NotProtobuf, OSError."""
    protos = _protos()
    try:
        if data is not None:
            spans = protoscan.external_tensors(data, protos.ModelProto.DESCRIPTOR)
            return _described(protos, [bytes(data[a:b]) for a, b in spans[:1]], len(spans))
        with path.open("rb") as handle:
            spans = protoscan.external_tensors(handle, protos.ModelProto.DESCRIPTOR)
            first = [os.pread(handle.fileno(), b - a, a) for a, b in spans[:1]]
            return _described(protos, first, len(spans))
    except protoscan.Malformed as exc:
        raise _NotProtobuf(str(exc)) from None
    except protoscan.OverBudget:
        model = protos.ModelProto()
        try:
            model.ParseFromString(path.read_bytes() if data is None else data)
        except Exception as exc:  # protobuf raises several types on what is not a message
            raise _NotProtobuf(str(exc)) from None
        return external_data_of(model)


def _described(protos: Any, first: list[bytes], count: int) -> list[tuple[str, str]]:
    """(name, location) of the first tensor found, then placeholders for the rest: only the
    first is named in the refusal, with how many more there are."""
    if not first:
        return []
    try:
        tensor = protos.TensorProto.FromString(first[0])
    except Exception:  # the walk took it; still refused, only not named
        return [("", "")] * count
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    return [(_text(tensor.name), _text(location))] + [("", "")] * (count - 1)


def preload() -> None:
    """Load the parser now, in a process kept ready for checks, instead of in the first check."""
    _protos()


@functools.cache
def _protos() -> Any:
    """onnx's generated protobuf module alone (its ModelProto, TensorProto): `import onnx` costs
    seconds (its ml_dtypes) in every verification, and only these classes are needed."""
    if "onnx" in sys.modules:  # already paid for (a quantize job): the same classes
        return sys.modules["onnx"]
    package = importlib.util.find_spec("onnx")  # found, not imported
    generated = Path(package.origin).with_name("onnx_ml_pb2.py") if package and package.origin else None
    spec = (
        importlib.util.spec_from_file_location("_onnx_ml_pb2", generated)
        if generated and generated.is_file()
        else None
    )
    if spec is None or spec.loader is None:
        import onnx  # a layout this does not know: the slow way

        return onnx
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
