"""`evaluate`: top-1 (and top-5) accuracy of a classifier on a folder-per-label set, with each
label's precision and recall and the pairs it confuses most (`agent.wire.EvaluateResult`).

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
from agent.wire import CONFUSIONS_KEPT

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
    predicted: Counter[str] = field(default_factory=Counter)
    mistakes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (actual, predicted)
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
        if best:
            self.predicted[best[0].label] += 1
            if not correct:
                self.mistakes[label, best[0].label] += 1
        self.top5 += any(c.label == label for c in best[:TOP])
        return [label, best[0].label if best else "", round(best[0].score, 6) if best else "", int(correct)]

    def summary(self) -> dict[str, Any]:
        scored = sum(self.seen.values())
        return {
            "images": scored,
            "failed": self.failed,
            "top1_accuracy": round(sum(self.hits.values()) / scored, 6) if scored else None,
            "top5_accuracy": round(self.top5 / scored, 6) if scored else None,
            "per_label": {label: self._label(label) for label in sorted(self.seen | self.predicted)},
            "confusion": [
                {"actual": actual, "predicted": predicted, "count": n}
                for (actual, predicted), n in sorted(self.mistakes.items(), key=_most_first)[:CONFUSIONS_KEPT]
            ],
            "confusion_pairs": len(self.mistakes),
        }

    def _label(self, label: str) -> dict[str, Any]:
        """Support, predictions and hits of one label, and the ratios (None where undefined:
        recall of a label with no images, precision of one never predicted)."""
        images, predicted, correct = self.seen[label], self.predicted[label], self.hits[label]
        recall = _ratio(correct, images)
        return {
            "images": images,
            "predicted": predicted,
            "correct": correct,
            "top1_accuracy": recall,
            "precision": _ratio(correct, predicted),
            "recall": recall,
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _most_first(item: tuple[tuple[str, str], int]) -> tuple[int, str, str]:
    return -item[1], *item[0]


def _labelled(folder: Path, root: Path, labels: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    known, found, unknown = set(labels), [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in known:
            unknown.append(sub.name)
            continue
        found += [(path, sub.name) for path in images_under(sub, root)]
    return found, unknown
