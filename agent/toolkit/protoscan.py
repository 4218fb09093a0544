"""Find an ONNX model's tensors that are kept in other files by walking its protobuf encoding.

Parsing a 100 MB model (protobuf's `ParseFromString`) copies every tensor's bytes into fresh
memory: 55 ms on a kit, after 56 ms to read the file, for a check that needs none of them. This
walks the encoding instead (the bytes a caller already holds, or the file read a window at a
time around its fields) and steps over each tensor's data, so the cost follows the model's
number of fields, not its size: a 100 MB classifier is walked in well under a millisecond.

The walk reads the encoding as protobuf's own parsers do: the same tags, varints (overlong ones
included), lengths bounded by the enclosing message, the same nesting limit, and a field's type
from onnx's own schema (its message descriptors). A tensor is flagged when it could be external
to ONNX Runtime: `data_location` set to EXTERNAL in any of its occurrences (a value decoded as
protobuf decodes an int32, its low 32 bits), or any `external_data` entry. What protobuf would
refuse is refused (`Malformed`); groups, which no ONNX writer emits, are refused too. A model
with more fields than `FIELD_BUDGET` is left to the parser (`OverBudget`): walked in Python, a
file of nothing but tiny fields would take far longer than the parse.
"""

from __future__ import annotations

import os
import re
from typing import Any, BinaryIO

__all__ = ["FIELD_BUDGET", "MAX_DEPTH", "Malformed", "OverBudget", "external_tensors", "is_repeated"]

FIELD_BUDGET = 2_000_000  # fields walked at most (~1 s); a 60,000-node graph has ~360,000
MAX_DEPTH = 100  # messages nested at most, as protobuf's Python and C++ parsers allow
_TENSOR = "onnx.TensorProto"
_EXTERNAL_DATA, _DATA_LOCATION, _EXTERNAL = 13, 14, 1  # TensorProto fields; TensorProto.EXTERNAL
_WORD = (1 << 32) - 1


class Malformed(Exception):
    """The bytes are not a protobuf message: protobuf's parser would refuse them."""


class OverBudget(Exception):
    """The model has more fields than `FIELD_BUDGET`: parse it instead."""


_FIELDS: dict[str, dict[int, Any]] = {}
_VARINTS = re.compile(rb"[\x80-\xff]{10}")  # a varint longer than 10 bytes (within packed ones)


def _message_fields(descriptor: Any) -> dict[int, Any]:
    """Field number -> what a length-delimited value of it is: a message descriptor, or for a
    repeated number field, how wide each packed number is (0: varints)."""
    fields = _FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = _FIELDS[descriptor.full_name] = {
            f.number: f.message_type if f.message_type is not None else _PACKED[f.type]
            for f in descriptor.fields
            if f.message_type is not None or (is_repeated(f) and f.type in _PACKED)
        }
    return fields


def is_repeated(field: Any) -> bool:
    """Whether a field descriptor is of a repeated field, on every protobuf release."""
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` before it
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


# FieldDescriptor.TYPE_*: double 1, float 2, int64 3, uint64 4, int32 5, fixed64 6, fixed32 7,
# bool 8, uint32 13, enum 14, sfixed32 15, sfixed64 16, sint32 17, sint64 18
_PACKED = {1: 8, 2: 4, 3: 0, 4: 0, 5: 0, 6: 8, 7: 4, 8: 0, 13: 0, 14: 0, 15: 4, 16: 8, 17: 0, 18: 0}


def _packed_ok(window: _Window, start: int, stop: int, width: int) -> bool:
    """Whether the bytes from `start` to `stop` are a whole number of packed numbers `width` wide
    (0: varints), as protobuf requires of a packed field."""
    if width:
        return (stop - start) % width == 0
    if start == stop:
        return True
    payload = window.span(start, stop)
    return len(payload) == stop - start and payload[-1] < 0x80 and not _VARINTS.search(payload)


def external_tensors(source: bytes | BinaryIO, model: Any) -> list[tuple[int, int]]:
    """(start, end) of every TensorProto in `source` (the bytes, or an open file read from its
    start, of an encoded message of the descriptor `model`, onnx's ModelProto) that names another
    file. A file is read in windows around the fields, never its tensors' data: a file that
    shrinks meanwhile reads as cut off (Malformed), never as a crash. Raises Malformed, OverBudget."""
    return _walk(_Window(source), model)


class _Window:
    """The bytes around a position: all of them for bytes, `_SPAN` read at a time from a file."""

    def __init__(self, source: bytes | BinaryIO) -> None:
        if isinstance(source, bytes | bytearray | memoryview):
            self.view, self.size, self._file = memoryview(source), len(source), None
        else:
            self._file = source.fileno()
            self.size = os.fstat(self._file).st_size
            self.view = memoryview(b"")
        self.base = 0  # the position of view[0]
        self.limit = len(self.view)  # the position past the view's last byte

    def at(self, pos: int) -> None:
        """Make the view start at `pos` (a file's window), when fewer than a field's head remain."""
        if self._file is not None and pos + _HEAD > self.limit and self.limit < self.size:
            self.view = memoryview(os.pread(self._file, _SPAN, pos))
            self.base, self.limit = pos, pos + len(self.view)

    def span(self, start: int, stop: int) -> memoryview:
        """The bytes from `start` to `stop` (fewer when a file was cut short meanwhile)."""
        if self.base <= start and stop <= self.limit:
            return self.view[start - self.base : stop - self.base]
        assert self._file is not None, "bytes are viewed whole"
        return memoryview(os.pread(self._file, stop - start, start))


_SPAN = 1 << 20  # bytes a file is read in
_HEAD = 32  # bytes a field's tag and length take at most (two 10-byte varints) and to spare


def _walk(window: _Window, root: Any) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    stack: list[tuple[int, int, dict[int, Any], bool, bool]] = []  # the enclosing messages
    pos, start, end = 0, 0, window.size
    fields, tensor, external = _message_fields(root), root.full_name == _TENSOR, False
    budget = FIELD_BUDGET
    while True:
        while pos < end:
            budget -= 1
            if budget < 0:
                raise OverBudget
            if pos + _HEAD > window.limit:
                window.at(pos)
            view, base = window.view, window.base
            stop = min(end, window.limit) - base
            tag, at = _varint(view, pos - base, stop)
            number, wire = tag >> 3, tag & 7
            if number == 0 or tag > _WORD:
                raise Malformed("a field number out of range")
            if wire == 0:
                value, at = _varint(view, at, stop)
                pos = base + at
                if tensor and number == _DATA_LOCATION and value & _WORD == _EXTERNAL:
                    external = True
            elif wire == 2:
                length, at = _varint(view, at, stop)
                pos = base + at
                if length > end - pos:
                    raise Malformed("a field longer than its message")
                inner = fields.get(number)
                if inner is None or isinstance(inner, int):  # bytes, a string, packed numbers, unknown
                    if inner is not None and not _packed_ok(window, pos, pos + length, inner):
                        raise Malformed("packed numbers cut off")
                    pos += length
                    continue
                if tensor and number == _EXTERNAL_DATA:
                    external = True
                if len(stack) >= MAX_DEPTH:
                    raise Malformed(f"messages nested deeper than {MAX_DEPTH}")
                stack.append((start, end, fields, tensor, external))
                start, end = pos, pos + length
                fields, tensor, external = _message_fields(inner), inner.full_name == _TENSOR, False
            elif wire == 1:
                pos = base + at + 8
            elif wire == 5:
                pos = base + at + 4
            else:
                raise Malformed(f"wire type {wire}")
        if pos != end:
            raise Malformed("a field runs past the end of its message")
        if external:
            found.append((start, end))
        if not stack:
            return found
        start, end, fields, tensor, external = stack.pop()


def _varint(view: memoryview, at: int, stop: int) -> tuple[int, int]:
    """The varint at `at` (at most 10 bytes, as protobuf reads them, before `stop`) and the index
    after it."""
    if at < stop:
        byte = view[at]
        if byte < 0x80:
            return byte, at + 1
    value = shift = 0
    for _ in range(10):
        if at >= stop:
            raise Malformed("a varint cut off")
        byte = view[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & ((1 << 64) - 1), at
        shift += 7
    raise Malformed("a varint longer than 10 bytes")
