"""An evaluate job's summary for people: a per-label table (precision, recall, count) and the
pairs the model confuses most. The CLI, the window's Jobs tab and the field report all show it
from here, so the three never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agent.wire import Confusion, EvaluateResult

__all__ = ["LabelRow", "evaluation", "evaluation_lines", "label_rows", "most_confused", "percent"]

CONFUSED_SHOWN = 5


@dataclass(frozen=True)
class LabelRow:
    label: str
    precision: float | None
    recall: float | None
    images: int
    predicted: int | None


def evaluation(result: dict[str, Any] | None) -> EvaluateResult | None:
    """The summary as the contract names it, or None when it is not one (a failed job's)."""
    if not result:
        return None
    try:
        return EvaluateResult.model_validate(result)
    except ValidationError:
        return None


def label_rows(result: EvaluateResult) -> list[LabelRow]:
    """One row per label, the weakest recall first (what a technician fixes first); labels the
    model predicted but the set has no images of come last."""
    rows = [
        LabelRow(label, score.precision, score.recall_or_accuracy, score.images, score.predicted)
        for label, score in result.per_label.items()
    ]
    return sorted(rows, key=lambda r: (r.images == 0, r.recall if r.recall is not None else 2.0, r.label))


def most_confused(result: EvaluateResult, shown: int = CONFUSED_SHOWN) -> list[Confusion]:
    return sorted(result.confusion, key=lambda c: (-c.count, c.actual, c.predicted))[:shown]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def evaluation_lines(result: EvaluateResult) -> list[str]:
    """The summary as plain text in a fixed-width font: headline, table, most confused pairs."""
    lines = [_headline(result), ""]
    width = max([len("label"), *(len(label) for label in result.per_label)])
    lines.append(f"{'label':<{width}}  {'precision':>9}  {'recall':>7}  {'images':>6}  {'predicted':>9}")
    for row in label_rows(result):
        predicted = "-" if row.predicted is None else str(row.predicted)
        lines.append(
            f"{row.label:<{width}}  {percent(row.precision):>9}  {percent(row.recall):>7}  "
            f"{row.images:>6}  {predicted:>9}"
        )
    lines += ["", *confusion_lines(result)]
    if result.unknown_folders:
        lines.append(f"folders named after no label, left out: {', '.join(result.unknown_folders)}")
    return lines


def confusion_lines(result: EvaluateResult) -> list[str]:
    pairs = most_confused(result)
    if not pairs:
        if result.per_label and all(s.predicted is None for s in result.per_label.values()):
            return ["most confused: not reported by this kit's agent (update it to see them)"]
        return ["most confused: none, every scored image was called by its own label"]
    more = result.confusion_pairs - len(pairs)
    return [
        "most confused (actual → predicted):",
        *(f"  {c.actual} → {c.predicted}: {c.count} image{'' if c.count == 1 else 's'}" for c in pairs),
    ] + ([f"  … and {more} more pair{'' if more == 1 else 's'} (see results.csv)"] if more > 0 else [])


def _headline(result: EvaluateResult) -> str:
    text = (
        f"top-1 {percent(result.top1_accuracy)}, top-5 {percent(result.top5_accuracy)} "
        f"on {result.images} image{'' if result.images == 1 else 's'}"
    )
    return text + (f" ({result.failed} unreadable, left out)" if result.failed else "")
