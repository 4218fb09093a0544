"""Classifier answers: the best classes of each image, from logits or probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agent.models.decode.boxes import label
from agent.models.decode.shapes import Shape, first, known, mismatch
from agent.wire import Classification, Manifest

__all__ = ["check", "classes", "is_distribution", "softmax", "top_k"]

_SMALL = 64  # up to this many classes, plain Python is ~10x quicker than numpy's calls


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis`."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=axis, keepdims=True)
    return result


def is_distribution(row: np.ndarray, tolerance: float = 1e-3) -> bool:
    """True if every value is in [0, 1] and they sum to 1 (a softmax already ran)."""
    return bool(row.size and row.min() >= 0 and row.max() <= 1 and abs(float(row.sum()) - 1) <= tolerance)


def check(shapes: Mapping[str, Shape], manifest: Manifest) -> None:
    """A classifier's first output is [N, classes] (trailing 1s allowed, as [N, C, 1, 1])."""
    name, shape = first(shapes)
    count = len(manifest.labels)
    trailing = [known(d) for d in shape[2:]]
    wanted = f"[N, {count or 'classes'}]"
    if len(shape) < 2 or any(d is not None and d != 1 for d in trailing):
        raise mismatch("a classifier (task classification)", wanted, {name: shape})
    width = known(shape[1])
    if count and width is not None and width != count:
        raise mismatch("a classifier with the manifest's labels", f"{wanted} ({count} labels)", {name: shape})


def classes(
    manifest: Manifest, outputs: Mapping[str, np.ndarray], count: int, k: int
) -> list[list[Classification]]:
    """The k best classes of each of the first `count` images."""
    rows = next(iter(outputs.values()))
    if rows.ndim != 2 or (manifest.labels and rows.shape[1] != len(manifest.labels)):  # the usual case skips
        check({name: value.shape for name, value in outputs.items()}, manifest)
    return [top_k(row, manifest.labels, k, manifest.scores) for row in rows[:count]]


def top_k(scores: np.ndarray, labels: Sequence[str], k: int, kind: str = "auto") -> list[Classification]:
    """The k best classes, best first: logits get a softmax, probabilities are used as they are,
    `auto` tells them apart per answer (a row in [0, 1] summing to 1 is probabilities)."""
    row = np.asarray(scores, dtype=np.float64).ravel()
    if row.size <= _SMALL:
        return _top_k_small(row.tolist(), labels, k, kind)
    plain = kind == "probabilities" or (kind == "auto" and is_distribution(row))
    probabilities = row if plain else softmax(row)
    best = np.argsort(-probabilities, kind="stable")[: max(k, 0)]
    return [
        Classification(label=label(labels, int(i)), index=int(i), score=float(probabilities[i])) for i in best
    ]


def _top_k_small(row: list[float], labels: Sequence[str], k: int, kind: str) -> list[Classification]:
    """As top_k for a short row (the same answers to within float rounding), in plain Python:
    one request's top-k in a few microseconds instead of ~40."""
    plain = kind == "probabilities" or (
        kind == "auto" and bool(row) and min(row) >= 0 and max(row) <= 1 and abs(math.fsum(row) - 1) <= 1e-3
    )
    if plain:
        probabilities = row
    else:
        top = max(row)
        exps = [math.exp(value - top) for value in row]
        total = math.fsum(exps)
        probabilities = [value / total for value in exps]
    best = sorted(range(len(row)), key=lambda i: -probabilities[i])[: max(k, 0)]  # stable, as argsort
    return [Classification(label=label(labels, i), index=i, score=probabilities[i]) for i in best]
