"""Embeddings (and the backbone's own scores) of labelled images, in one ONNX Runtime pass.

Images are prepared exactly as the live route prepares them (`_images.prepared`: the
manifest's resize, normalisation, layout), on the job's threads, and run in batches when the
model's batch dimension is free. Images that do not decode are counted, not fatal here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.jobs.kinds._images import Item, prepared
from agent.toolkit.images import stack
from agent.wire import Manifest

__all__ = ["Extracted", "extract"]

BATCH = 32


@dataclass
class Extracted:
    kept: list[int] = field(default_factory=list)  # indices into the paths given, in order
    features: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # file name -> why

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(features: images × flattened embedding, backbone scores: images × outputs)."""
        return np.concatenate(self.features), np.concatenate(self.scores)


def extract(
    session: Any,
    manifest: Manifest,
    paths: Sequence[Path],
    threads: int,
    progress: Callable[[int], None],
) -> Extracted:
    shape = session.get_inputs()[0].shape
    fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
    batch = fixed or BATCH
    found, waiting, indices = Extracted(), [], []
    for index, item in enumerate(prepared(paths, manifest, threads, ahead=2 * batch)):
        if item.input is None:
            found.unreadable[item.path.name] = item.error or "unreadable"
        else:
            waiting.append(item)
            indices.append(index)
        if len(waiting) == batch:
            _run(session, manifest, waiting, fixed, found, indices)
            waiting, indices = [], []
        progress(index + 1)
    if waiting:
        _run(session, manifest, waiting, fixed, found, indices)
    return found


def _run(
    session: Any,
    manifest: Manifest,
    items: list[Item],
    fixed: int | None,
    found: Extracted,
    indices: list[int],
) -> None:
    inputs = stack([item.input for item in items if item.input is not None])
    real = len(inputs)
    if fixed is not None and real < fixed:  # a fixed batch: pad, then drop the padding's answers
        inputs = np.concatenate([inputs, np.repeat(inputs[-1:], fixed - real, axis=0)])
    features, scores = session.run(None, {manifest.input.name: inputs})
    found.features.append(np.asarray(features, dtype=np.float32).reshape(len(inputs), -1)[:real])
    found.scores.append(np.asarray(scores, dtype=np.float32).reshape(len(inputs), -1)[:real])
    found.kept.extend(indices)
