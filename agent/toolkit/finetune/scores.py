"""Accuracy, per-class precision and recall, and the confusion matrix of predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy", "confusion", "per_class"]


def accuracy(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    return round(float(np.mean(actual == predicted)), 6) if len(actual) else None


def confusion(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows: actual class, columns: predicted."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (actual, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    hits, actual, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    return {
        label: {
            "precision": _ratio(int(hits[i]), int(predicted[i])),
            "recall": _ratio(int(hits[i]), int(actual[i])),
            "support": int(actual[i]),
        }
        for i, label in enumerate(labels)
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
