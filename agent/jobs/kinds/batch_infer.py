"""`batch-infer`: a deployed model over every image of a folder → results.jsonl + results.csv.

Each row names the model, version and sha256. Images are decoded one batch ahead on
a thread, and batches go through the model whole when its batch dimension allows.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from agent.api.schemas import InferResult
from agent.jobs.kinds._images import Item, decoded_batches
from agent.jobs.kinds._model import fixed_batch, load, model_fields
from agent.jobs.paths import images_under
from agent.jobs.report import Reporter
from agent.models.infer import MAX_BATCH, run_batch

CSV_COLUMNS = ["file", "model", "version", "sha256", "label", "score", "detections", "error"]


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    folder, root = Path(spec["input"]), Path(spec["root"])
    paths = images_under(folder, root)
    manifest, session = load(spec, report)
    batch = MAX_BATCH if fixed_batch(session, manifest) is None else 1
    report.log(f"{len(paths)} image(s) under {folder}, batches of {batch}")
    started, failed, done = time.perf_counter(), 0, 0
    report.progress(0, len(paths))
    with report.open("results.jsonl") as jsonl, report.open("results.csv") as raw_csv:
        table = csv.DictWriter(raw_csv, CSV_COLUMNS)
        table.writeheader()
        for items in decoded_batches(paths, batch, decoders=min(2, spec["threads"])):
            for row in _rows(session, manifest, items, folder, spec["params"]["top_k"]):
                failed += "error" in row
                jsonl.write(json.dumps(row) + "\n")
                table.writerow(_csv_row(row))
            done += len(items)
            report.progress(done, len(paths))
    seconds = time.perf_counter() - started
    return {**model_fields(manifest), "images": len(paths), "failed": failed, "batch": batch,
            "seconds": round(seconds, 3), "images_per_s": round(len(paths) / seconds, 2) if seconds else None}


def _rows(session: Any, manifest: Any, items: list[Item], folder: Path, top_k: int) -> list[dict[str, Any]]:
    good = [item for item in items if item.image is not None]
    results = iter(run_batch(session, manifest, [item.image for item in good], top_k) if good else [])
    rows = []
    for item in items:
        row: dict[str, Any] = {"file": str(item.path.relative_to(folder)), **model_fields(manifest)}
        if item.image is None:
            row["error"] = item.error
        else:
            row.update(_answer(next(results)))
        rows.append(row)
    return rows


def _answer(result: InferResult) -> dict[str, Any]:
    data = result.model_dump(include={"latency_ms", "classes", "detections"}, exclude_none=True)
    data["latency_ms"] = round(result.latency_ms, 3)
    return data


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    best = (row.get("classes") or row.get("detections") or [{}])[0]
    detections = row.get("detections")
    return {**{k: row.get(k, "") for k in ("file", "model", "version", "sha256", "error")},
            "label": best.get("label", ""), "score": best.get("score", ""),
            "detections": "" if detections is None else len(detections)}
