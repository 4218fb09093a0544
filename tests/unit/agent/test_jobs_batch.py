"""The batch-infer / evaluate pipeline on the real bundled models and real images.

Answers must be those of one-at-a-time inference through /infer's own code
(`run_inference`), in folder order, whatever the threads and batches did.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image

from agent.errors import Refusal
from agent.jobs.kinds import _images, _pipeline, batch_infer, evaluate
from agent.jobs.kinds._pipeline import BATCH_BYTES, Pipeline, batch_size
from agent.jobs.layout import RESULTS, SPEC
from agent.jobs.paths import images_under
from agent.jobs.process import WorkerProcess
from agent.jobs.report import Reporter
from agent.models.infer import MAX_BATCH, run_inference, run_prepared
from agent.toolkit.images import decode_image, stack, to_tensor
from agent.toolkit.sessions import open_session
from agent.wire import InferResult, Manifest, Resources
from resources import datasets_dir, images_dir, models_dir
from tests.onnx_models import classifier

DIGITS = "digits-cnn-fp32"
SHAPES = "shapes-yolo-fp32"


def bundled(name: str) -> tuple[Path, Manifest]:
    path = models_dir() / f"{name}.onnx"
    return path, Manifest.model_validate_json(path.with_name(f"{name}.manifest.json").read_bytes())


def job_spec(
    model: Path, manifest: Manifest, folder: Path, threads: int = 2, top_k: int = 3, kind: str = "batch-infer"
) -> dict[str, Any]:
    """What the agent's Preparer hands the worker for a folder job."""
    return {
        "kind": kind,
        "params": {"top_k": top_k},
        "threads": threads,
        "max_result_bytes": 1 << 30,
        "input": str(folder),
        "root": str(folder),
        "model": {"manifest": manifest.model_dump(mode="json"), "path": str(model)},
    }


class Events:
    """The worker's stdout, kept: progress and log lines as the agent would read them."""

    def __init__(self) -> None:
        self.out = io.StringIO()

    def reporter(self, results: Path) -> Reporter:
        results.mkdir(parents=True, exist_ok=True)
        return Reporter(self.out, results, 1 << 30)

    def of(self, kind: str) -> list[dict[str, Any]]:
        events = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [e for e in events if e["t"] == kind]


def jpeg(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=90, **({"exif": exif} if exif else {}))
    return out.getvalue()


def digit_folder(folder: Path, count: int) -> list[str]:
    """Eval digits as they are (PNG 32×32), as camera-sized JPEGs, one turned by EXIF, plus three
    files that are no image: 'count' readable pictures in all. Returns the broken ones' names."""
    pngs = sorted((datasets_dir() / "digits-eval").glob("*/*.png"))
    folder.mkdir(parents=True)
    for n in range(count - 1):
        source = pngs[n * 7 % len(pngs)]
        if n % 3:
            (folder / f"{n:03d}.png").write_bytes(source.read_bytes())
        else:
            big = Image.open(source).resize((160 + n, 120), Image.Resampling.BICUBIC)
            (folder / f"{n:03d}.jpg").write_bytes(jpeg(big))
    turned = Image.open(pngs[5]).resize((120, 90)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    (folder / f"{count - 1:03d}-turned.jpg").write_bytes(jpeg(turned, exif))
    whole = (folder / "000.jpg").read_bytes()
    broken = {
        "010-broken.png": b"not a png at all",
        "020-empty.jpg": b"",
        "030-truncated.jpg": whole[: len(whole) // 2],
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    return sorted(broken)


def one_at_a_time(model: Path, manifest: Manifest, paths: list[Path], top_k: int) -> list[InferResult | str]:
    """What /infer answers for each file, or its error message."""
    session, _ = open_session(model, 1)
    answers: list[InferResult | str] = []
    for path in paths:
        try:
            result, _ = run_inference(session, manifest, path.read_bytes(), None, top_k)
        except Refusal as exc:
            answers.append(exc.message)
            continue
        assert result is not None
        answers.append(result)
    return answers


def model_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the batch size of every session.run the pipeline makes."""
    sizes: list[int] = []

    def recording(session: Any, manifest: Manifest, batch: np.ndarray, *args: Any) -> list[InferResult]:
        sizes.append(len(batch))
        return run_prepared(session, manifest, batch, *args)

    monkeypatch.setattr(_pipeline, "run_prepared", recording)
    return sizes


def readable_per_batch(answers: list[InferResult | str], batch: int) -> list[int]:
    """How many readable images each run of `batch` files in folder order holds."""
    runs = [answers[i : i + batch] for i in range(0, len(answers), batch)]
    return [sum(isinstance(answer, InferResult) for answer in run) for run in runs]


def same_classes(row: dict[str, Any], expected: InferResult) -> None:
    assert expected.classes is not None
    assert [c["index"] for c in row["classes"]] == [c.index for c in expected.classes]
    # a batched run may round the last float bits differently from a run of one
    assert [c["score"] for c in row["classes"]] == pytest.approx(
        [c.score for c in expected.classes], abs=1e-5
    )


def test_rows_match_one_at_a_time_inference_in_folder_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "cam"
    broken = digit_folder(folder, 2 * MAX_BATCH + 7)
    spec, events, runs = job_spec(model, manifest, folder), Events(), model_runs(monkeypatch)
    summary = batch_infer.run(spec, events.reporter(tmp_path / "results"))
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    paths = images_under(folder, folder)
    assert [row["file"] for row in rows] == [p.name for p in paths]
    expected = one_at_a_time(model, manifest, paths, 3)
    for row, answer in zip(rows, expected, strict=True):
        assert (row["model"], row["version"], row["sha256"]) == ("digits-cnn", "1.0", manifest.sha256)
        if isinstance(answer, str):
            assert row["error"] == answer
            assert row["file"] in broken
        else:
            same_classes(row, answer)
    assert (summary["images"], summary["failed"], summary["batch"]) == (len(paths), 3, MAX_BATCH)
    # runs go side by side, so they may end in any order
    assert sorted(runs) == sorted(readable_per_batch(expected, MAX_BATCH)), "each batch of files in one run"
    progress = [(e["done"], e["total"]) for e in events.of("progress")]
    assert progress[0] == (0, len(paths))
    assert progress[-1] == (len(paths), len(paths))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_decode_threads_prepare_exactly_the_tensor_infer_makes(tmp_path: Path) -> None:
    for name in (DIGITS, SHAPES):
        _, manifest = bundled(name)
        folder = tmp_path / name
        digit_folder(folder, 8)
        for path in images_under(folder, folder):
            item = _images.prepare(path, manifest)
            if item.input is None:
                assert item.error
                continue
            tensor, [scale] = to_tensor(
                [decode_image(path.read_bytes(), None)], manifest.input, manifest.normalisation
            )
            assert np.array_equal(stack([item.input]), tensor)
            assert item.scale == scale


def test_detections_land_on_the_original_pictures_as_infer_puts_them(tmp_path: Path) -> None:
    model, manifest = bundled(SHAPES)
    folder = tmp_path / "scenes"
    folder.mkdir()
    for n, source in enumerate(sorted(images_dir().glob("shapes-*.png"))):
        shutil.copy(source, folder / f"{n}-as-is.png")
        scene = Image.open(source).resize((640, 480), Image.Resampling.BICUBIC)
        (folder / f"{n}-camera.jpg").write_bytes(jpeg(scene))
    pipeline = Pipeline(job_spec(model, manifest, folder), Events().reporter(tmp_path / "results"))
    paths = images_under(folder, folder)
    answers = [a for batch in pipeline.answers(paths, 3) for a in batch]
    assert [a.path for a in answers] == paths
    for answer, expected in zip(answers, one_at_a_time(model, manifest, paths, 3), strict=True):
        assert isinstance(expected, InferResult)
        assert answer.result is not None
        found, wanted = answer.result.detections or [], expected.detections or []
        assert wanted, "the bundled scenes hold shapes"
        assert [d.label for d in found] == [d.label for d in wanted]
        for box, want in zip(found, wanted, strict=True):
            assert box.box == pytest.approx(want.box, abs=1e-3)


def fixed_batch_of_one(model: Path, tmp_path: Path) -> Path:
    """The bundled classifier exported with batch dimension 1, as many old exports are."""
    graph = onnx.load(model)
    for value in (graph.graph.input[0], graph.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "fixed.onnx"
    onnx.save(graph, path)
    return path


def test_a_model_with_a_fixed_batch_of_one_gets_one_image_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "cam"
    digit_folder(folder, 9)
    runs, events = model_runs(monkeypatch), Events()
    summary = batch_infer.run(
        job_spec(fixed_batch_of_one(model, tmp_path), manifest, folder), events.reporter(tmp_path / "results")
    )
    assert runs == [1] * 9
    assert (summary["batch"], summary["failed"]) == (1, 3)
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    paths = images_under(folder, folder)
    for row, answer in zip(rows, one_at_a_time(model, manifest, paths, 3), strict=True):
        if isinstance(answer, InferResult):
            same_classes(row, answer)
    assert "batches of 1" in events.of("log")[-1]["line"]


def refuses_batches(tmp_path: Path) -> tuple[Path, Manifest]:
    """A classifier that declares a free batch dimension but reshapes its input to one image:
    ONNX Runtime fails on any batch larger than one."""
    path = tmp_path / "liar.onnx"
    manifest = classifier(path, size=8, golden=False)
    graph = onnx.load(path)
    flatten = graph.graph.node[0]
    graph.graph.node.remove(flatten)
    graph.graph.node.insert(0, helper.make_node("Reshape", ["image", "one"], ["flat"]))
    graph.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "one"))
    onnx.save(graph, path)
    return path, manifest


def test_a_model_that_fails_on_a_batch_goes_on_one_image_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, manifest = refuses_batches(tmp_path)
    folder = tmp_path / "cam"
    digit_folder(folder, MAX_BATCH + 5)
    runs, events = model_runs(monkeypatch), Events()
    summary = batch_infer.run(job_spec(model, manifest, folder), events.reporter(tmp_path / "results"))
    paths = images_under(folder, folder)
    expected = one_at_a_time(model, manifest, paths, 3)
    whole = [n for n in readable_per_batch(expected, MAX_BATCH) if n > 1]
    # each batch (two here, running side by side) was tried whole, then every image alone
    assert sorted(runs) == sorted(whole + [1] * (MAX_BATCH + 5))
    assert (summary["images"], summary["failed"], summary["batch"]) == (MAX_BATCH + 8, 3, 1)
    said = [e["line"] for e in events.of("log") if "going on one image at a time" in e["line"]]
    assert len(said) == 1, "said once, whichever batch failed first"
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    for row, answer in zip(rows, expected, strict=True):
        if isinstance(answer, str):
            assert row["error"] == answer
        else:
            same_classes(row, answer)


def test_stopping_early_ends_the_job_threads_with_bounded_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "cam"
    digit_folder(folder, 6 * MAX_BATCH)
    prepared: list[Path] = []
    real_prepare = _images.prepare

    def counting(path: Path, manifest: Manifest) -> _images.Item:
        prepared.append(path)
        return real_prepare(path, manifest)

    monkeypatch.setattr(_pipeline, "prepare", counting)
    pipeline = Pipeline(job_spec(model, manifest, folder, threads=2), Events().reporter(tmp_path / "r"))
    assert pipeline.session.get_session_options().intra_op_num_threads == 1, "a run takes one thread"
    answers = pipeline.answers(images_under(folder, folder), 3)
    first = next(answers)
    assert any(t.name.startswith("batch") for t in threading.enumerate())
    answers.close()  # what an exception in the job's loop does
    assert len(first) == MAX_BATCH
    assert not any(t.name.startswith("batch") for t in threading.enumerate()), "no thread outlives it"
    # ahead of the answers handed out: at most one batch per thread
    assert len(prepared) <= len(first) + pipeline.threads * pipeline.batch < 6 * MAX_BATCH


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_decoding_and_the_model_together_never_run_more_threads_than_the_job_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """A model run counts as one thread (its session has one intra-op thread), a decode as
    one: seen from the real functions as they run, the sum never passes the job's limit."""
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "cam"
    digit_folder(folder, 3 * MAX_BATCH)
    lock, busy, peak, workers = threading.Lock(), [0], [0], set[str]()
    real_prepare, real_run = _images.prepare, run_prepared

    def watched(cost: int, call: Any, *args: Any) -> Any:
        with lock:
            busy[0] += cost
            peak[0] = max(peak[0], busy[0])
            workers.add(threading.current_thread().name)
        try:
            time.sleep(0.001)  # long enough for an overlap to show
            return call(*args)
        finally:
            with lock:
                busy[0] -= cost

    monkeypatch.setattr(_pipeline, "prepare", lambda *a: watched(1, real_prepare, *a))
    monkeypatch.setattr(_pipeline, "run_prepared", lambda *a: watched(1, real_run, *a))
    spec = job_spec(model, manifest, folder, threads=threads)
    summary = batch_infer.run(spec, Events().reporter(tmp_path / "r"))
    assert summary["images"] == 3 * MAX_BATCH + 3
    assert 1 <= peak[0] <= threads
    assert len(workers) <= threads, "decodes and runs happen on the job's threads only"


def test_large_inputs_get_smaller_batches_so_memory_stays_bounded() -> None:
    _, manifest = bundled(DIGITS)
    assert batch_size(manifest) == MAX_BATCH
    for side, dtype, images in ((224, "float32", 13), (224, "uint8", MAX_BATCH), (640, "float32", 1)):
        size = {"height": side, "width": side, "channels": 3, "dtype": dtype}
        big = manifest.model_copy(update={"input": manifest.input.model_copy(update=size)})
        assert batch_size(big) == images
        assert images == 1 or images * side * side * 3 * np.dtype(dtype).itemsize <= BATCH_BYTES
        # runs side by side share the bound: their inputs together stay within it
        together = batch_size(big, runs=4)
        assert 1 <= together <= images
        assert together == 1 or 4 * together * side * side * 3 * np.dtype(dtype).itemsize <= BATCH_BYTES
    assert batch_size(manifest, runs=4) == MAX_BATCH, "small inputs keep whole batches"


def test_evaluate_scores_what_one_at_a_time_inference_answers(tmp_path: Path) -> None:
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "labelled"
    for label in manifest.labels:
        target = folder / label
        target.mkdir(parents=True)
        for source in sorted((datasets_dir() / "digits-eval" / label).glob("*.png"))[:9]:
            shutil.copy(source, target / source.name)
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG but not really")
    (folder / "not-a-label").mkdir()
    spec = job_spec(model, manifest, folder, kind="evaluate")
    summary = evaluate.run(spec, Events().reporter(tmp_path / "results"))
    paths = [p for label in manifest.labels for p in images_under(folder / label, folder)]
    answers = one_at_a_time(model, manifest, paths, 5)
    good = [(p, a) for p, a in zip(paths, answers, strict=True) if isinstance(a, InferResult)]
    hits = sum(a.classes is not None and a.classes[0].label == p.parent.name for p, a in good)
    assert (summary["images"], summary["failed"]) == (90, 1)
    assert summary["top1_accuracy"] == round(hits / 90, 6)
    assert summary["unknown_folders"] == ["not-a-label"]


def test_cancel_kills_a_running_job_with_its_decode_threads(tmp_path: Path) -> None:
    """Cancel is the runner's SIGKILL of the worker's process group, mid-run."""
    model, manifest = bundled(DIGITS)
    folder = tmp_path / "cam"
    folder.mkdir()
    frame = jpeg(Image.open(sorted(images_dir().glob("digit-*.png"))[4]).resize((1600, 1200)))
    for n in range(400):
        (folder / f"{n:03d}.jpg").write_bytes(frame)
    job = tmp_path / "job"
    (job / RESULTS).mkdir(parents=True)
    (job / SPEC).write_text(json.dumps(job_spec(model, manifest, folder, threads=1)))
    lines: list[str] = []
    proc = WorkerProcess("job-1", job, Resources(threads=1), 600, lines.append, lambda: None)
    proc.start()
    try:
        while proc.progress[0] == 0 and not proc.finished:
            time.sleep(0.01)
        proc.kill("cancel")
        proc.join(10)
    finally:
        proc.kill("test over")
    assert proc.finished
    assert proc.exit_code is not None
    assert proc.exit_code < 0, "killed, not finished"
    assert proc.result is None
    assert 0 < proc.progress[0] < 400
