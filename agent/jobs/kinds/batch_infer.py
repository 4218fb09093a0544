"""`batch-infer`: a deployed model over every image of a folder → results.jsonl + results.csv.

Each row names the model, version and sha256. Each of the job's threads decodes and prepares
a few images and runs them as one batch (when the model's batch dimension allows), and rows
come out in folder order, as one-at-a-time inference would give them.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from agent.jobs.kinds._model import model_fields
from agent.jobs.kinds._pipeline import Answer, Pipeline
from agent.jobs.kinds._unsure import Keeper
from agent.jobs.paths import images_under
from agent.jobs.report import Reporter
from agent.wire import InferResult

CSV_COLUMNS = ["file", "model", "version", "sha256", "label", "score", "detections", "error"]


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    folder, root = Path(spec["input"]), Path(spec["root"])
    paths = images_under(folder, root)
    pipeline = Pipeline(spec, report)
    fields = model_fields(pipeline.manifest)
    report.log(
        f"{len(paths)} image(s) under {folder}, batches of {pipeline.batch}, "
        f"{pipeline.threads} at once, each decoded and run on a thread of its own"
    )
    keeper, top_k = Keeper.of(spec), spec["params"]["top_k"]
    started, failed, done = time.perf_counter(), 0, 0
    report.progress(0, len(paths))
    with report.open("results.jsonl") as jsonl, report.open("results.csv") as raw_csv:
        table = csv.DictWriter(raw_csv, CSV_COLUMNS)
        table.writeheader()
        # an unsure margin needs the second score, whatever top_k the rows show
        for answers in pipeline.answers(paths, max(top_k, 2) if keeper else top_k):
            for answer in answers:
                row = _row(answer, folder, fields)
                if keeper is not None and "classes" in row:
                    keeper.offer_file(answer.path, row["classes"], row["file"])
                    row["classes"] = row["classes"][:top_k]
                failed += "error" in row
                jsonl.write(json.dumps(row) + "\n")
                table.writerow(_csv_row(row))
            done += len(answers)
            report.progress(done, len(paths))
    seconds = time.perf_counter() - started
    return {
        **fields,
        "images": len(paths),
        "failed": failed,
        "batch": pipeline.batch,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(paths) / seconds, 2) if seconds else None,
        **(keeper.summary() if keeper else {}),
    }


def _row(answer: Answer, folder: Path, fields: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"file": str(answer.path.relative_to(folder)), **fields}
    if answer.result is None:
        row["error"] = answer.error
    else:
        row.update(_answer(answer.result))
    return row


def _answer(result: InferResult) -> dict[str, Any]:
    data = result.model_dump(include={"latency_ms", "classes", "detections"}, exclude_none=True)
    data["latency_ms"] = round(result.latency_ms, 3)
    return data


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    best = (row.get("classes") or row.get("detections") or [{}])[0]
    detections = row.get("detections")
    return {
        **{k: row.get(k, "") for k in ("file", "model", "version", "sha256", "error")},
        "label": best.get("label", ""),
        "score": best.get("score", ""),
        "detections": "" if detections is None else len(detections),
    }
