"""Output shapes against what a family expects: one refusal, naming expected and found, used
at install (symbolic shapes from the file) and on every answer (the shapes the model gave)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.toolkit.errors import Invalid

__all__ = ["Dim", "Shape", "describe", "first", "known", "mismatch"]

Dim = int | str | None  # a named or unknown dimension takes any size
Shape = Sequence[Dim]

_HINT = (
    "check the model's task and output family with `kitfleet models inspect MODEL.onnx`, "
    "then deploy it again with a manifest that says them (task, detection.format, detection.outputs)"
)


def known(dim: Dim) -> int | None:
    """The dimension's size, or None when it is symbolic."""
    return dim if isinstance(dim, int) and dim >= 0 else None


def first(shapes: Mapping[str, Shape]) -> tuple[str, Shape]:
    """The model's first output (single-output families read only that one)."""
    name = next(iter(shapes))
    return name, shapes[name]


def describe(shapes: Mapping[str, Shape]) -> str:
    """`name [1, 84, 8400], other [1]` with symbolic dimensions as `?`-free names."""
    return ", ".join(f"{name} {_dims(shape)}" for name, shape in shapes.items())


def _dims(shape: Shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def mismatch(family: str, expected: str, found: Mapping[str, Shape] | str) -> Invalid:
    """The refusal when outputs contradict the manifest's family."""
    seen = found if isinstance(found, str) else describe(found)
    return Invalid("output_mismatch", f"{family} outputs {expected}; this model outputs {seen}", _HINT)
