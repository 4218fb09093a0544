"""Output shapes an export leaves free ([?, ?, ?]): one run on a blank picture of the input's size
says what they are, so the family can still be told by its layout."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from agent.wire import InputSpec
from app.fleet.inspection.facts import Facts

__all__ = ["needs_probe", "probed"]


def needs_probe(facts: Facts) -> bool:
    """Whether an output leaves free any dimension but the batch."""
    return any(None in o.dims[1:] for o in facts.outputs)


def probed(facts: Facts, spec: InputSpec) -> tuple[Facts, str]:
    """`facts` with the output shapes one run gives (the batch stays free), and a note for the
    reasons; the facts unchanged (and why) when the model cannot run here."""
    from agent.toolkit.sessions import open_session  # ONNX Runtime: only for such a model

    shape = (
        (1, spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (1, spec.height, spec.width, spec.channels)
    )
    try:
        session = open_session(facts.path, 1, cpu_only=True, quiet=True)[0]
        outputs = session.run(None, {spec.name: np.zeros(shape, dtype=spec.dtype)})
    except Exception:  # ORT's own types: the layout stays unknown, said in the reasons
        return facts, (
            f"output shapes left free: the model did not run on a blank {spec.height}x{spec.width} "
            "picture; set the task (--task, or Task in the deploy dialog) if the one inferred is wrong"
        )
    names = [o.name for o in session.get_outputs()]
    shapes = {name: np.shape(value) for name, value in zip(names, outputs, strict=True)}
    known = tuple(
        replace(o, dims=(o.dims[0], *(int(d) for d in shapes[o.name][1:])))
        if o.name in shapes and len(shapes[o.name]) == len(o.dims)
        else o
        for o in facts.outputs
    )
    return replace(facts, outputs=known), f"output shapes from one run at {spec.height}x{spec.width}"
