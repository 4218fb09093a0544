"""`evaluate`: top-1 (and top-5) accuracy of a classifier on a folder-per-label set.

`<folder>/<label>/*.jpg`, with folder names matching the model's labels; folders named
after no label are reported and left out of the score.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from agent.jobs.errors import PermanentFailure
from agent.jobs.kinds._images import decoded_batches
from agent.jobs.kinds._model import fixed_batch, load, model_fields
from agent.jobs.paths import images_under
from agent.jobs.report import Reporter
from agent.models.infer import MAX_BATCH, run_batch


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    folder, root = Path(spec["input"]), Path(spec["root"])
    manifest, session = load(spec, report)
    if manifest.task != "classification":
        raise PermanentFailure(f"evaluate scores classifiers; {manifest.name} is a {manifest.task} model")
    labelled, unknown = _labelled(folder, root, manifest.labels)
    if unknown:
        report.log(f"folders not named after a label, left out: {', '.join(unknown)}")
    if not labelled:
        raise PermanentFailure(f"no images in folders named after the model's labels under {folder}")
    batch = MAX_BATCH if fixed_batch(session, manifest) is None else 1
    hits, top5, seen, failed = Counter[str](), 0, Counter[str](), 0
    with report.open("results.csv") as raw:
        table = csv.writer(raw)
        table.writerow(["file", "label", "predicted", "score", "correct"])
        done = 0
        for items in decoded_batches([path for path, _ in labelled], batch, min(2, spec["threads"])):
            good = [item for item in items if item.image is not None]
            failed += len(items) - len(good)
            results = run_batch(session, manifest, [i.image for i in good], 5) if good else []
            for item, result in zip(good, results, strict=True):
                label, best = item.path.parent.name, (result.classes or [])
                correct = bool(best) and best[0].label == label
                seen[label] += 1
                hits[label] += correct
                top5 += any(c.label == label for c in best[:5])
                table.writerow([str(item.path.relative_to(folder)), label, best[0].label if best else "",
                                round(best[0].score, 6) if best else "", int(correct)])
            done += len(items)
            report.progress(done, len(labelled))
    scored = sum(seen.values())
    summary = {**model_fields(manifest), "images": scored, "failed": failed,
               "top1_accuracy": round(sum(hits.values()) / scored, 6) if scored else None,
               "top5_accuracy": round(top5 / scored, 6) if scored else None,
               "per_label": {label: {"images": n, "top1_accuracy": round(hits[label] / n, 6)}
                             for label, n in sorted(seen.items())},
               "unknown_folders": unknown}
    report.write_json("result.json", summary)
    return summary


def _labelled(folder: Path, root: Path, labels: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    known, found, unknown = set(labels), [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in known:
            unknown.append(sub.name)
            continue
        found += [(path, sub.name) for path in images_under(sub, root)]
    return found, unknown
