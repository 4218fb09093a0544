"""`evaluate`: top-1 (and top-5) accuracy of a classifier on a folder-per-label set.

`<folder>/<label>/*.jpg`, with folder names matching the model's labels; folders named
after no label are reported and left out of the score.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.jobs.errors import PermanentFailure
from agent.jobs.kinds._model import model_fields
from agent.jobs.kinds._pipeline import Answer, Pipeline
from agent.jobs.paths import images_under
from agent.jobs.report import Reporter

TOP = 5  # top-5 accuracy needs the five best classes of every image


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    folder, root = Path(spec["input"]), Path(spec["root"])
    pipeline = Pipeline(spec, report)
    manifest = pipeline.manifest
    if manifest.task != "classification":
        raise PermanentFailure(f"evaluate scores classifiers; {manifest.name} is a {manifest.task} model")
    labelled, unknown = _labelled(folder, root, manifest.labels)
    if unknown:
        report.log(f"folders not named after a label, left out: {', '.join(unknown)}")
    if not labelled:
        raise PermanentFailure(f"no images in folders named after the model's labels under {folder}")
    score, done = _Score(), 0
    with report.open("results.csv") as raw:
        table = csv.writer(raw)
        table.writerow(["file", "label", "predicted", "score", "correct"])
        for answers in pipeline.answers([path for path, _ in labelled], TOP):
            for answer in answers:
                if (row := score.add(answer)) is not None:
                    table.writerow([str(answer.path.relative_to(folder)), *row])
            done += len(answers)
            report.progress(done, len(labelled))
    summary = {**model_fields(manifest), **score.summary(), "unknown_folders": unknown}
    report.write_json("result.json", summary)
    return summary


@dataclass
class _Score:
    hits: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    top5: int = 0
    failed: int = 0

    def add(self, answer: Answer) -> list[Any] | None:
        """Count one answer; its CSV cells after the file name, or None for an unreadable image."""
        if answer.result is None:
            self.failed += 1
            return None
        label, best = answer.path.parent.name, (answer.result.classes or [])
        correct = bool(best) and best[0].label == label
        self.seen[label] += 1
        self.hits[label] += correct
        self.top5 += any(c.label == label for c in best[:TOP])
        return [label, best[0].label if best else "", round(best[0].score, 6) if best else "", int(correct)]

    def summary(self) -> dict[str, Any]:
        scored = sum(self.seen.values())
        return {
            "images": scored,
            "failed": self.failed,
            "top1_accuracy": round(sum(self.hits.values()) / scored, 6) if scored else None,
            "top5_accuracy": round(self.top5 / scored, 6) if scored else None,
            "per_label": {
                label: {"images": n, "top1_accuracy": round(self.hits[label] / n, 6)}
                for label, n in sorted(self.seen.items())
            },
        }


def _labelled(folder: Path, root: Path, labels: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    known, found, unknown = set(labels), [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in known:
            unknown.append(sub.name)
            continue
        found += [(path, sub.name) for path in images_under(sub, root)]
    return found, unknown
