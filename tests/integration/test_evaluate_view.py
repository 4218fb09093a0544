"""An evaluate job's result read by a person (issue 20 item 8): the real agent scores the bundled
digits model on a labelled set with a few images filed under the wrong label; the kit reports
per-label precision, recall and counts and the confused pairs, and `kitfleet jobs results`, `jobs
show` and the field report show them as a table, not a JSON dump."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from app.fleet.service import Fleet
from resources import datasets_dir
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, deploy

MISFILED = 3  # images of a 3 filed under "8": the model, right about them, counts as confusing 8 with 3


def labelled_set(folder: Path, per_label: int = 3) -> int:
    count = 0
    source = datasets_dir() / "digits-eval"
    for label_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for image in sorted(label_dir.glob("*.png"))[:per_label]:
            shutil.copy(image, folder / label_dir.name / image.name)
            count += 1
    for n, image in enumerate(sorted((source / "3").glob("*.png"))[-MISFILED:]):
        shutil.copy(image, folder / "8" / f"misfiled-{n}.png")
        count += 1
    return count


def test_evaluate_results_are_a_table_and_the_confused_pairs(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("scorer", mdns=False))
    deploy(fleet, kit)
    images = labelled_set(tmp_path / "digits")
    [submitted] = cli_json(
        fleet,
        "jobs",
        "submit",
        "scorer",
        "--kind",
        "evaluate",
        "--model",
        "digits-cnn",
        "--upload",
        str(tmp_path / "digits"),
    )
    [job] = cli_json(fleet, "jobs", "watch", "scorer", submitted["job_id"])
    result = job["result"]
    assert result["images"] == images
    per_label = result["per_label"]
    # what the kit reports adds up: every image predicted once, every mistake a confused pair
    assert sum(s["images"] for s in per_label.values()) == images
    assert sum(s["predicted"] for s in per_label.values()) == images
    correct = sum(s["correct"] for s in per_label.values())
    assert sum(c["count"] for c in result["confusion"]) == images - correct
    for score in per_label.values():
        if score["predicted"]:
            assert score["precision"] == round(score["correct"] / score["predicted"], 6)
        if score["images"]:
            assert score["recall"] == score["top1_accuracy"] == round(score["correct"] / score["images"], 6)
    pairs = {(c["actual"], c["predicted"]): c["count"] for c in result["confusion"]}
    assert pairs.get(("8", "3"), 0) >= 2, pairs  # the bundled model reads most 3s right
    counts = [c["count"] for c in result["confusion"]]
    assert counts == sorted(counts, reverse=True)

    shown = cli(fleet, "jobs", "results", "scorer", job["job_id"]).stdout
    # before: "  per_label: {"0": {"images": 3, "top1_accuracy": 1.0}, ..." on one line
    assert "per_label:" not in shown
    assert "  label  precision   recall  images  predicted" in shown, shown
    eight = per_label["8"]
    assert (
        f"  8      {_pct(eight['precision']):>9}  {_pct(eight['recall']):>7}  {eight['images']:>6}  "
        f"{eight['predicted']:>9}" in shown
    ), shown
    assert "most confused (actual → predicted):" in shown
    assert f"  8 → 3: {pairs['8', '3']} images" in shown
    assert f"top-1 {result['top1_accuracy']:.1%}" in shown
    detail = cli(fleet, "jobs", "show", "scorer", job["job_id"]).stdout
    assert "most confused (actual → predicted):" in detail

    page = tmp_path / "report.html"
    cli(fleet, "report", "--out", str(page))
    html = page.read_text()
    assert "<h2>Evaluations</h2>" in html
    assert "<th>Precision</th><th>Recall</th><th>Images</th>" in html
    assert f'<tr><td>8</td><td>3</td><td class="num">{pairs["8", "3"]}</td></tr>' in html


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def test_an_older_kits_evaluation_still_reads() -> None:
    """A summary from an agent before precision and confusions: recall from its accuracy, and
    the confused pairs said to be unknown rather than none."""
    from app.fleet.evaluation import evaluation, evaluation_lines

    old = {"images": 4, "failed": 0, "top1_accuracy": 0.75, "top5_accuracy": 1.0, "unknown_folders": []}
    old["per_label"] = {"a": {"images": 2, "top1_accuracy": 1.0}, "b": {"images": 2, "top1_accuracy": 0.5}}
    scored = evaluation(json.loads(json.dumps(old)))
    assert scored is not None
    lines = evaluation_lines(scored)
    assert lines[0] == "top-1 75.0%, top-5 100.0% on 4 images"
    assert lines[3].split() == ["b", "-", "50.0%", "2", "-"]  # weakest recall first
    assert "not reported by this kit's agent" in lines[-1]
