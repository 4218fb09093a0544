"""`fine-tune` on this CPU: time to fine-tune on 500 labelled images, accuracy gained over the
backbone's own top-1 on the same validation images, and the numpy head against scikit-learn's
LogisticRegression on the same embeddings.

Goal (issue 23): the head within 1 point of LogisticRegression's validation accuracy; time as a
ratio. The dataset, made in a temp dir, is what a technician labels in the field: the 400
bundled eval digits inverted and turned a quarter (conditions the digits CNN never saw, under
its own labels) plus 100 drawn shapes in two classes it has no label for; 12 classes, 500
images. The fine-tune kind's own code runs in this process on that set (extract, train,
compose, verify; the job's result is printed), then the same embeddings and split train:
  numpy head       agent.toolkit.finetune.head.train_head (the kit's), `--epochs` steps
  LogisticRegression  lbfgs, the same objective (C = 1 / (l2 · n), standardised features)
scikit-learn is not a dependency of the agent; install it in the venv for this comparison
(`.venv/bin/pip install scikit-learn`); without it the comparison is skipped and says so.
Run: .venv/bin/python -m benchmarks.fine_tune [--threads 2] [--epochs 200] [--l2 1e-3]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from agent.jobs.kinds import fine_tune
from agent.jobs.report import Reporter
from agent.toolkit.finetune.head import objective, train_head
from agent.toolkit.finetune.labelled import stratified_split
from agent.wire import Manifest
from resources import datasets_dir, models_dir

DIGITS = models_dir() / "digits-cnn-fp32.onnx"
POINTS_GOAL = 1.0
CONVERGED = 2000  # steps after which the head's objective equals LogisticRegression's
SHAPES = ("ring", "box")


def make_dataset(folder: Path) -> int:
    count = 0
    for label_dir in sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for image in sorted(label_dir.glob("*.png")):
            ImageOps.invert(Image.open(image).convert("L")).rotate(90).save(
                folder / label_dir.name / image.name
            )
            count += 1
    rng = np.random.default_rng(0)
    for kind in SHAPES:
        (folder / kind).mkdir()
        for n in range(50):
            picture = Image.new("L", (32, 32), 0)
            x, y, r = (int(v) for v in (*rng.integers(12, 20, 2), rng.integers(6, 11)))
            box = [x - r, y - r, x + r, y + r]
            pen = ImageDraw.Draw(picture)
            (pen.ellipse if kind == "ring" else pen.rectangle)(box, outline=255, width=2)
            picture.save(folder / kind / f"{n:03d}.png")
            count += 1
    return count


def run_job(folder: Path, out: Path, threads: int, epochs: int, l2: float) -> tuple[dict[str, Any], float]:
    manifest = Manifest.model_validate_json(DIGITS.with_suffix("").with_suffix(".manifest.json").read_text())
    spec = {
        "kind": "fine-tune",
        "params": {"model": manifest.name, "dataset": "field", "epochs": epochs, "l2": l2},
        "model": {"manifest": manifest.model_dump(mode="json"), "path": str(DIGITS)},
        "input": str(folder),
        "root": str(folder),
        "threads": threads,
        "max_result_bytes": 1 << 30,
    }
    out.mkdir()
    started = time.perf_counter()
    result = fine_tune.run(spec, Reporter(io.StringIO(), out, 1 << 30))
    return result, time.perf_counter() - started


def embeddings(folder: Path, threads: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The same embeddings the job trained on, by the job's own extraction."""
    import onnx

    from agent.jobs.kinds._extract import extract
    from agent.jobs.kinds._labelled import read_labelled
    from agent.toolkit.finetune.compose import with_outputs
    from agent.toolkit.sessions import open_session

    manifest = Manifest.model_validate_json(DIGITS.with_suffix("").with_suffix(".manifest.json").read_text())
    labelled = read_labelled(folder, folder)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "extract.onnx"
        onnx.save(with_outputs(onnx.load(str(DIGITS)), ["view", "logits"]), str(path))
        session = open_session(path, threads, spinning=False, quiet=True)[0]
        started = time.perf_counter()
        found = extract(session, manifest, labelled.paths, threads, lambda _: None)
        took = time.perf_counter() - started
    classes = sorted(set(labelled.labels))
    targets = np.array([classes.index(labelled.labels[i]) for i in found.kept])
    return found.arrays()[0], targets, took


def compare(features: np.ndarray, targets: np.ndarray, epochs: int, l2: float) -> None:
    train, val = stratified_split(targets, 0.2, 0)
    classes = int(targets.max()) + 1
    rows = []
    for steps in sorted({epochs, CONVERGED}):
        started = time.perf_counter()
        head = train_head(features[train], targets[train], classes, l2, steps)
        took = time.perf_counter() - started
        accuracy = float(np.mean(head.probabilities(features[val]).argmax(axis=1) == targets[val]))
        rows.append((f"numpy head, {steps} steps", accuracy, head.loss, took))
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        print(
            "scikit-learn is not installed: the comparison is skipped "
            "(`.venv/bin/pip install scikit-learn`, for this benchmark only)"
        )
        _table(rows, len(train), len(val), features.shape[1])
        return
    started = time.perf_counter()
    scaler = StandardScaler().fit(features[train])
    reference = LogisticRegression(C=1.0 / (l2 * len(train)), max_iter=5000)
    reference.fit(scaler.transform(features[train]), targets[train])
    took = time.perf_counter() - started
    theirs = float(np.mean(reference.predict(scaler.transform(features[val])) == targets[val]))
    loss = objective(
        scaler.transform(features[train]),
        np.eye(classes)[targets[train]],
        reference.coef_.T,
        reference.intercept_,
        l2,
    )
    rows.append(("LogisticRegression lbfgs", theirs, loss, took))
    _table(rows, len(train), len(val), features.shape[1])
    for name, accuracy, _, spent in rows[:-1]:
        gap = 100 * (accuracy - theirs)
        verdict = "met" if abs(gap) <= POINTS_GOAL + 1e-9 else "NOT met"
        side = "" if abs(gap) < 1e-9 else (" in the head's favour" if gap > 0 else " against the head")
        print(
            f"  {name}: {gap:+.1f} points{side} (goal within {POINTS_GOAL:g}: {verdict}); "
            f"time ratio numpy / sklearn {spent / took:.2f}x"
        )


def _table(rows: list[tuple[str, float, float, float]], train: int, val: int, width: int) -> None:
    print(f"\nhead on the same {train} training / {val} validation embeddings ({width} values):")
    print(f"  {'':<28}{'val accuracy':>14}{'objective':>12}{'train time':>14}")
    for name, accuracy, loss, took in rows:
        print(f"  {name:<28}{100 * accuracy:>13.1f}%{loss:>12.5f}{took * 1000:>11.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--l2", type=float, default=1e-3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "field"
        count = make_dataset(folder)
        result, took = run_job(folder, Path(scratch) / "results", args.threads, args.epochs, args.l2)
        before, after = result["before"], result["after"]
        print(
            f"fine-tune job on {count} labelled images, {args.threads} threads: {took:.2f} s "
            f"({result['train_count']} train, {result['val_count']} validation, "
            f"{len(result['labels'])} classes)"
        )
        print(
            f"  backbone top-1 on the {before['images']} validation images it has labels for: "
            f"{100 * before['accuracy']:.1f}%"
        )
        print(
            f"  fine-tuned on the same images: {100 * after['accuracy_where_before']:.1f}% "
            f"(gain {100 * (after['accuracy_where_before'] - before['accuracy']):+.1f} points); "
            f"on all {result['val_count']}: {100 * after['accuracy']:.1f}%"
        )
        print(f"  better: {result['better']}; advice: {result['advice']}")
        features, targets, extract_s = embeddings(folder, args.threads)
        print(f"  of which extraction alone: {extract_s:.2f} s ({count / extract_s:.0f} images/s)")
        compare(features, targets, args.epochs, args.l2)
        print("\nresult (per_class and confusion left out):")
        shown = {k: v for k, v in result.items() if k not in ("after",)}
        print(json.dumps(shown, indent=1)[:1500])


if __name__ == "__main__":
    main()
