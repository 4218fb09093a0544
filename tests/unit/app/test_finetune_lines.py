"""A fine-tune result as people read it, and when the window offers Activate."""

from __future__ import annotations

from typing import Any

from app.fleet.finetune import activatable, fine_tune, fine_tune_lines


def result(better: bool = True, activated: bool = False, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "labels": ["7", "cat"],
        "train_count": 16,
        "val_count": 4,
        "embedding": "view",
        "before": {"accuracy": 0.5, "note": "on the 2 of 4 it has labels for", "images": 2},
        "after": {
            "accuracy": 0.75,
            "accuracy_where_before": 1.0,
            "per_class": {
                "7": {"precision": 1.0, "recall": 1.0, "support": 2},
                "cat": {"precision": None, "recall": 0.5, "support": 2},
            },
            "confusion": {"labels": ["7", "cat"], "matrix": [[2, 0], [1, 1]]},
        },
        "better": better,
        "advice": "activate it" if better else "keep the backbone",
        "installed": {"name": "digits-cnn", "version": "1.0-ft", "activated": activated},
        "energy": {"joules": 1.0},
    }
    return {**base, **changes}


def test_lines_show_before_after_table_and_matrix() -> None:
    tuned = fine_tune(result())
    assert tuned is not None
    lines = fine_tune_lines(tuned)
    assert "before: 50.0%  (on the 2 of 4 it has labels for)" in lines
    assert "after:  75.0%  (100.0% on the images scored before)" in lines
    assert any(line.split() == ["cat", "-", "50.0%", "2"] for line in lines)
    matrix = lines.index("confusion (rows: actual, columns: predicted)")
    assert lines[matrix + 2].split() == ["7", "2", "0"]
    assert lines[matrix + 3].split() == ["cat", "1", "1"]
    assert lines[-1] == "installed: digits-cnn 1.0-ft (not active)"


def test_activate_is_offered_only_for_a_better_inactive_version() -> None:
    assert activatable(fine_tune(result()) or _never()) == ("digits-cnn", "1.0-ft")
    assert activatable(fine_tune(result(better=False)) or _never()) is None
    assert activatable(fine_tune(result(activated=True)) or _never()) is None
    assert activatable(fine_tune(result(installed=None)) or _never()) is None


def test_a_result_that_is_not_a_fine_tune_is_none() -> None:
    assert fine_tune(None) is None
    assert fine_tune({"images": 3}) is None


def _never() -> Any:
    raise AssertionError("a fine-tune result")
