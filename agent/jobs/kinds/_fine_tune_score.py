"""A fine-tune job's verdict: the new head against the backbone on the same validation images.

"Before" is the backbone's own top-1 on the validation images whose class it has a label
for; with none, it has no accuracy to give and the new model is measured against always
answering the commonest class. The advice never suggests activating a model that is not
better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.toolkit.finetune.head import Head
from agent.toolkit.finetune.scores import accuracy, confusion, per_class

__all__ = ["ROUGH_BELOW", "Scored", "score"]

ROUGH_BELOW = 20  # fewer validation images than this: say the figures are rough


@dataclass
class Scored:
    val_count: int
    after_accuracy: float
    after: dict[str, Any]
    before: dict[str, Any]
    better: bool
    advice: str

    def summary(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "better": self.better, "advice": self.advice}


def score(
    head: Head,
    features: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    backbone_scores: np.ndarray,
    backbone_labels: Sequence[str],
) -> Scored:
    predicted = head.probabilities(features).argmax(axis=1)
    matrix = confusion(targets, predicted, len(classes))
    after_accuracy = accuracy(targets, predicted) or 0.0
    known = np.array([classes[t] in backbone_labels for t in targets], dtype=bool)
    before = _before(targets, classes, backbone_scores, backbone_labels, known)
    after = {
        "accuracy": after_accuracy,
        "accuracy_where_before": accuracy(targets[known], predicted[known])
        if before["accuracy"] is not None
        else None,
        "per_class": per_class(matrix, classes),
        "confusion": {"labels": list(classes), "matrix": matrix.tolist()},
    }
    baseline = float(np.bincount(targets).max() / len(targets))
    better, advice = _verdict(before["accuracy"], after, baseline, len(targets))
    return Scored(len(targets), after_accuracy, after, before, better, advice)


def _before(
    targets: np.ndarray,
    classes: Sequence[str],
    scores: np.ndarray,
    labels: Sequence[str],
    known: np.ndarray,
) -> dict[str, Any]:
    if not labels or scores.shape[1] != len(labels):
        return {
            "accuracy": None,
            "images": 0,
            "note": f"the backbone's output has {scores.shape[1]} values for {len(labels)} labels, "
            "so its own answers cannot be scored",
        }
    new = sorted({classes[t] for t in targets[~known]})
    if not known.any():
        return {
            "accuracy": None,
            "images": 0,
            "note": f"the backbone has no label for {', '.join(new)}: it cannot name these classes",
        }
    answers = np.array([labels[i] for i in scores[known].argmax(axis=1)])
    actual = np.array([classes[t] for t in targets[known]])
    note = (
        f"the backbone's top-1 on the {int(known.sum())} of {len(targets)} validation images "
        "it has labels for"
    )
    if new:
        note += f"; it has no label for {', '.join(new)}"
    return {"accuracy": accuracy(actual, answers), "images": int(known.sum()), "note": note}


def _verdict(before: float | None, after: dict[str, Any], baseline: float, count: int) -> tuple[bool, str]:
    rough = f" With only {count} validation images the figures are rough." if count < ROUGH_BELOW else ""
    confused = _most_confused(after["confusion"])
    more = "Label more, and more varied, images" + (f" (most confused: {confused})" if confused else "")
    if before is not None:
        mine = after["accuracy_where_before"]
        if mine > before:
            return True, (
                f"The new version scores {mine:.1%} where the backbone scores {before:.1%} on the same "
                "validation images: activate it to serve it (the backbone stays for rollback)." + rough
            )
        return False, (
            f"The new version is not better than the backbone ({mine:.1%} against {before:.1%} on the "
            f"same validation images): keep serving the backbone. {more}, then fine-tune again." + rough
        )
    if after["accuracy"] > baseline:
        return True, (
            f"The backbone cannot name these classes; the new version scores {after['accuracy']:.1%} on "
            f"held-out images (always answering the commonest class would score {baseline:.1%}). "
            "Activate it to serve the new labels: it answers only with them." + rough
        )
    return False, (
        f"The new version scores {after['accuracy']:.1%}, no better than always answering the commonest "
        f"class ({baseline:.1%}): do not activate it. {more}, then fine-tune again." + rough
    )


def _most_confused(matrix: dict[str, Any]) -> str:
    grid = np.array(matrix["matrix"])
    np.fill_diagonal(grid, 0)
    if grid.size == 0 or grid.max() == 0:
        return ""
    actual, predicted = np.unravel_index(int(grid.argmax()), grid.shape)
    labels = matrix["labels"]
    return f"{labels[actual]} taken for {labels[predicted]} {int(grid.max())} time(s)"
