"""Field datasets (images labelled on the kit, a folder per class) and the unsure buffer
(inputs a model was unsure about, kept by stream and batch-infer jobs for labelling)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from agent.wire.base import WireModel

__all__ = [
    "LABEL_PATTERN",
    "UNSURE_ID_PATTERN",
    "ClassCount",
    "FieldClasses",
    "KeepUnsure",
    "LabelledImage",
    "UnsureItem",
    "UnsureScore",
]

# A class label is a folder name on the kit: it starts with a letter or digit (so never `.`
# or `..`), and holds no separator, space or control character.
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# time (microseconds, hex) then 44 random bits: ids sort oldest first
UNSURE_ID_PATTERN = r"^[0-9a-f]{24}$"


class KeepUnsure(WireModel):
    """Which answers of a classifier count as unsure, and how many of them the kit keeps."""

    model_config = ConfigDict(extra="forbid")

    top_below: float | None = Field(
        default=None, gt=0, le=1, description="keep an input whose top score is below this"
    )
    margin_below: float | None = Field(
        default=None, gt=0, le=1, description="keep an input whose top two scores differ by less"
    )
    max_items: int = Field(default=200, ge=1, le=10_000, description="kept per model; the oldest go first")
    max_bytes: int = Field(
        default=64 << 20, ge=1 << 16, le=1 << 30, description="bytes kept per model; the oldest go first"
    )
    min_gap_s: float = Field(
        default=0.0, ge=0, le=86400, description="seconds between two kept inputs (a camera's frames)"
    )

    @model_validator(mode="after")
    def _some_band(self) -> KeepUnsure:
        if self.top_below is None and self.margin_below is None:
            raise ValueError("give top_below, margin_below or both: what counts as unsure")
        return self


class LabelledImage(WireModel):
    dataset: str
    label: str
    file: str = Field(description="<label>/<sha256[:16]>.<ext> inside the dataset")
    size: int
    added: bool = Field(description="false when the same image already had this label")
    images: int = Field(description="images of this label in the dataset now")


class ClassCount(WireModel):
    label: str
    images: int


class FieldClasses(WireModel):
    dataset: str
    classes: list[ClassCount]
    images: int


class UnsureScore(WireModel):
    label: str
    score: float


class UnsureItem(WireModel):
    id: str
    model: str
    version: str
    job_id: str | None = None
    source: str = Field(default="", description="the input's file name, or the frame number")
    kept_at: float
    top: float
    margin: float | None = Field(default=None, description="top score minus the second")
    classes: list[UnsureScore]
    size: int = Field(description="bytes of the kept image")
