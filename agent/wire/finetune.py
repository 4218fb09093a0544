"""The `fine-tune` job kind: teach a deployed classifier new classes from images labelled on the kit.

The kit extracts the backbone's embeddings, trains a linear softmax head on them and installs
backbone + head as a new version (`agent/jobs/kinds/fine_tune.py`). Its result is
`FineTuneResult`.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from agent.wire.base import WireModel
from agent.wire.models import NAME_PATTERN, VERSION_PATTERN

__all__ = [
    "LABEL_PATTERN",
    "ClassScore",
    "ConfusionMatrix",
    "FineTuneAfter",
    "FineTuneBefore",
    "FineTuneParams",
    "FineTuneResult",
    "Installed",
]

# A class name becomes a folder name and a label on screens: letters, digits, _ . -, never a
# separator, space or control, never `.` or `..` (the leading character rules both out). The
# same rule as a field dataset's labels, which fine-tune jobs read.
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# the name of a tensor in an ONNX graph: printable, no controls
_TENSOR_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"


class FineTuneParams(WireModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=NAME_PATTERN, description="a deployed classifier: the backbone")
    version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="its version; the serving one when empty"
    )
    dataset: str = Field(
        pattern=NAME_PATTERN,
        description="a dataset on the kit: one folder per class (<class>/<image>) or a "
        "labels.csv of file,label",
    )
    embedding: str | None = Field(
        default=None,
        pattern=_TENSOR_PATTERN,
        description="the tensor the head learns from; empty = the input of the final Gemm/MatMul",
    )
    val_fraction: float = Field(
        default=0.2, gt=0, le=0.5, description="share of each class held out for validation"
    )
    l2: float = Field(default=1e-3, ge=0, le=100, description="L2 regularisation of the head's weights")
    epochs: int = Field(default=200, ge=1, le=10000, description="full-batch passes of the head's training")
    min_per_class: int = Field(default=5, ge=2, le=100000, description="fewest images a class may have")
    activate: bool = Field(
        default=False, description="serve the new version at once, when it is better than the backbone"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="the split's shuffle")


class FineTuneBefore(WireModel):
    accuracy: float | None = Field(description="the backbone's top-1 on the validation images it can name")
    note: str = ""
    images: int = Field(default=0, description="how many validation images that is")


class ClassScore(WireModel):
    precision: float | None
    recall: float | None
    support: int


class ConfusionMatrix(WireModel):
    labels: list[str]
    matrix: list[list[int]] = Field(description="rows: actual class, columns: predicted")


class FineTuneAfter(WireModel):
    accuracy: float
    accuracy_where_before: float | None = Field(
        default=None, description="the new model's top-1 on the images the backbone was scored on"
    )
    per_class: dict[str, ClassScore]
    confusion: ConfusionMatrix


class Installed(WireModel):
    name: str
    version: str
    activated: bool


class FineTuneResult(WireModel):
    """What a fine-tune job's result says (extra keys, such as energy, may follow)."""

    model_config = ConfigDict(extra="allow")

    labels: list[str]
    train_count: int
    val_count: int
    embedding: str
    before: FineTuneBefore
    after: FineTuneAfter
    better: bool
    advice: str
    installed: Installed | None = None
