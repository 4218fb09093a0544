"""A fine-tune job's result for people: before/after accuracy, a per-class table, the confusion
matrix and the advice. The CLI and the window's Jobs tab both show it from here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agent.wire.finetune import FineTuneResult
from app.fleet.text import printable

__all__ = ["activatable", "fine_tune", "fine_tune_lines"]

MATRIX_SHOWN = 20  # classes; a larger confusion matrix is left to result.json
_MAX_CELL = 12  # characters of a class name in the matrix's headings


def fine_tune(result: dict[str, Any] | None) -> FineTuneResult | None:
    """The result as the contract names it, or None when it is not one (a failed job's)."""
    if not result:
        return None
    try:
        return FineTuneResult.model_validate(result)
    except ValidationError:
        return None


def activatable(result: FineTuneResult) -> tuple[str, str] | None:
    """(model, version) to offer for activation: installed, not active yet, and better."""
    installed = result.installed
    if installed is None or installed.activated or not result.better:
        return None
    return installed.name, installed.version


def fine_tune_lines(result: FineTuneResult) -> list[str]:
    before, after = result.before, result.after
    lines = [
        f"labels: {printable(', '.join(result.labels))} ({result.train_count} train, "
        f"{result.val_count} validation; embedding {printable(result.embedding)})",
        f"before: {_percent(before.accuracy)}  ({printable(before.note)})"
        if before.accuracy is not None
        else f"before: -  ({printable(before.note)})",
        f"after:  {_percent(after.accuracy)}"
        + (f"  ({_percent(mine)} on the images scored before)" if (mine := _where_before(result)) else ""),
        f"better: {'yes' if result.better else 'no'}",
        "",
        f"{'class':<20} {'precision':>9} {'recall':>7} {'images':>7}",
    ]
    for label, score in after.per_class.items():
        lines.append(
            f"{printable(label)[:20]:<20} {_percent(score.precision):>9} {_percent(score.recall):>7} "
            f"{score.support:>7}"
        )
    lines += ["", *_matrix(result), "", printable(result.advice)]
    if result.installed is not None:
        state = "active" if result.installed.activated else "not active"
        lines.append(
            f"installed: {printable(result.installed.name)} {printable(result.installed.version)} ({state})"
        )
    return lines


def _where_before(result: FineTuneResult) -> float | None:
    """The new model's score on the backbone's images, when those are not all of them."""
    value = result.after.accuracy_where_before
    return value if value is not None and result.before.images != result.val_count else None


def _matrix(result: FineTuneResult) -> list[str]:
    labels, rows = result.after.confusion.labels, result.after.confusion.matrix
    if len(labels) > MATRIX_SHOWN:
        return [f"confusion matrix: {len(labels)} classes, see result.json"]
    names = [printable(label)[:_MAX_CELL] for label in labels]
    cell = max(7, *(len(name) + 1 for name in names))
    lines = [
        "confusion (rows: actual, columns: predicted)",
        " " * cell + "".join(f"{n:>{cell}}" for n in names),
    ]
    for name, row in zip(names, rows, strict=False):
        lines.append(f"{name:<{cell}}" + "".join(f"{n:>{cell}}" for n in row))
    return lines


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
