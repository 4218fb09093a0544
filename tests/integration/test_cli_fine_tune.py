"""`kitfleet jobs submit --kind fine-tune` end to end: the real CLI uploads drawn shapes to a real
agent, which fine-tunes the bundled digits CNN; the result reads as a table and a matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, deploy, refused
from tests.integration.test_fine_tune import SHAPES, shapes_dataset


def test_fine_tune_from_the_cli_shows_before_after_and_the_confusion_matrix(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("alpha", mdns=False))
    deploy(fleet, kit)
    shapes_dataset(tmp_path / "shapes", per_class=10)
    submitted = cli(
        fleet,
        "jobs",
        "submit",
        "alpha",
        "--kind",
        "fine-tune",
        "--model",
        "digits-cnn",
        "--upload",
        str(tmp_path / "shapes"),
        "--epochs",
        "100",
        "--seed",
        "2",
        "--watch",
    )
    assert "done    alpha: job" in submitted.stdout, submitted.stdout
    [job] = cli_json(fleet, "jobs", "list", "alpha")
    params = job["request"]["params"]
    assert (params["epochs"], params["seed"], params["activate"]) == (100, 2, False)
    shown = cli(fleet, "jobs", "results", "alpha", job["job_id"]).stdout
    assert "labels: circle, square, triangle (24 train, 6 validation; embedding view)" in shown
    assert "before: -  (the backbone has no label for circle, square, triangle" in shown
    assert "after:  " in shown
    assert "confusion (rows: actual, columns: predicted)" in shown
    for shape in SHAPES:
        row = next(line for line in shown.splitlines() if line.strip().startswith(shape) and "%" in line)
        assert row.split()[-1] == "2"  # two validation images of each class
    assert "installed: digits-cnn 1.0-ft (not active)" in shown
    models = cli_json(fleet, "models", "list", "alpha")
    assert "1.0-ft" in str(models)

    refused(
        fleet,
        "jobs",
        "submit",
        "alpha",
        "--kind",
        "fine-tune",
        "--model",
        "digits-cnn",
        "--dataset",
        "nothing-here",
        says="nothing-here",
    )
