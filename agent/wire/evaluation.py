"""What an `evaluate` job answers: accuracy, per-label precision and recall, and the confusions.

Every field has a default, so a summary from an older kit (per-label images and top-1 accuracy
only, no confusions) reads as one with those figures unknown."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from agent.wire.base import WireModel

__all__ = ["CONFUSIONS_KEPT", "Confusion", "EvaluateResult", "LabelScore"]

CONFUSIONS_KEPT = 200  # most frequent (actual, predicted) pairs in the summary; all are in results.csv


class LabelScore(WireModel):
    model_config = ConfigDict(extra="allow")

    images: int = Field(default=0, description="labelled images of this label (support)")
    predicted: int | None = Field(default=None, description="images the model called this label")
    correct: int | None = Field(default=None, description="images of this label called so")
    top1_accuracy: float | None = Field(default=None, description="the same as recall; older name")
    precision: float | None = Field(default=None, description="correct / predicted")
    recall: float | None = Field(default=None, description="correct / images")

    @property
    def recall_or_accuracy(self) -> float | None:
        """Recall, from an older kit's top-1 accuracy per label where recall was not sent."""
        return self.recall if self.recall is not None else self.top1_accuracy


class Confusion(WireModel):
    actual: str = Field(description="the label the image is filed under")
    predicted: str = Field(description="what the model said instead")
    count: int = Field(ge=1)


class EvaluateResult(WireModel):
    model_config = ConfigDict(extra="allow")

    images: int = 0
    failed: int = Field(default=0, description="images that did not decode")
    top1_accuracy: float | None = None
    top5_accuracy: float | None = None
    per_label: dict[str, LabelScore] = Field(default_factory=dict)
    confusion: list[Confusion] = Field(
        default_factory=list, description=f"mistakes by pair, most frequent first (at most {CONFUSIONS_KEPT})"
    )
    confusion_pairs: int = Field(default=0, description="distinct mistaken pairs, kept or not")
    unknown_folders: list[str] = Field(default_factory=list)
