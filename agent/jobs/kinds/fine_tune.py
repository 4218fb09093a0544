"""`fine-tune`: teach a deployed classifier new classes from images labelled on the kit.

The backbone's embeddings (the input of its final Gemm/MatMul, or a named tensor) are
extracted with ONNX Runtime on the job's threads, a linear softmax head is trained on them in
numpy, and backbone + head is composed into a new ONNX model, checked as every install is
(`agent.models.verify`). The agent installs it as a new version (`agent/jobs/service.py`),
activated only when asked and better than the backbone. Every refusal (too few images, one
class, a class without validation images, no embedding, odd names, unreadable files) comes
before training starts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import Refusal
from agent.jobs.errors import PermanentFailure
from agent.jobs.kinds._extract import Extracted, extract
from agent.jobs.kinds._fine_tune_score import Scored, score
from agent.jobs.kinds._labelled import Labelled, read_labelled
from agent.jobs.report import Reporter
from agent.toolkit.finetune.head import Head, train_head
from agent.toolkit.finetune.labelled import check_counts, stratified_split
from agent.toolkit.hashing import sha256_file
from agent.toolkit.sessions import open_session, seeded_input
from agent.wire import Golden, Manifest
from agent.wire.finetune import FineTuneParams

MODEL, MANIFEST = "model.onnx", "manifest.json"
MAX_UNREADABLE = 0.1  # a larger share of files that do not decode: the dataset is not what it seems
GOLDEN_SEED = 7


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    try:
        return _run(spec, report)
    except Refusal as exc:  # the toolkit's refusals: the job fails for good, saying what to fix
        raise PermanentFailure(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None


def _run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    params = FineTuneParams.model_validate(spec["params"])
    manifest, backbone, embedding = _backbone(spec, params)
    labelled = _labelled(spec, report, params)
    report.log(f"embedding {embedding!r}; {len(labelled.paths)} images ({labelled.layout})")
    found = _extract(spec, report, backbone, embedding, manifest, labelled)
    labels = [labelled.labels[i] for i in found.kept]
    classes = check_counts(labels, params.min_per_class)
    targets = np.array([classes.index(label) for label in labels])
    train, val = stratified_split(targets, params.val_fraction, params.seed)
    features, backbone_scores = found.arrays()
    _fits(features.shape, len(classes), spec.get("memory_mb"))
    report.log(
        f"training a head on {len(train)} embeddings of size {features.shape[1]}, {len(classes)} classes"
    )
    head = train_head(features[train], targets[train], len(classes), params.l2, params.epochs)
    scored = score(head, features[val], targets[val], classes, backbone_scores[val], manifest.labels)
    summary = {
        "model": manifest.name,
        "from_version": manifest.version,
        "labels": classes,
        "train_count": len(train),
        "val_count": len(val),
        "embedding": embedding,
        "skipped": _skipped(labelled, found),
        **scored.summary(),
        "installed": None,
    }
    tuned = _compose(spec, report, backbone, embedding, head, classes, manifest, params, scored)
    summary["version"], summary["sha256"] = tuned.version, tuned.sha256
    report.write_json("result.json", summary)
    report.progress(len(labelled.paths) + 1, len(labelled.paths) + 1)
    return summary


def _backbone(spec: dict[str, Any], params: FineTuneParams) -> tuple[Manifest, Any, str]:
    """The backbone's manifest, graph and embedding tensor; a model without one is refused."""
    manifest = Manifest.model_validate(spec["model"]["manifest"])
    if manifest.task != "classification":
        raise PermanentFailure(
            f"{manifest.name} is a {manifest.task} model; fine-tune extends a classifier's final "
            "layer, so give a deployed classifier as the backbone"
        )
    from agent.toolkit.finetune.embedding import find_embedding

    backbone = _onnx().load(spec["model"]["path"])
    return manifest, backbone, find_embedding(backbone, params.embedding)


def _labelled(spec: dict[str, Any], report: Reporter, params: FineTuneParams) -> Labelled:
    """The labelled files, refused by their counts before a single image is decoded."""
    labelled = read_labelled(Path(spec["input"]), Path(spec["root"]))
    check_counts(labelled.labels, params.min_per_class)
    for why, count in sorted(labelled.skipped.items()):
        report.log(f"skipped {count} file(s): {why}")
    return labelled


def _fits(shape: tuple[int, ...], classes: int, memory_mb: int | None) -> None:
    """Refuse a head whose training would outgrow the memory the job holds: float64 copies of
    the embeddings, the scores, and the features' Gram matrix and its eigenvectors."""
    images, width = shape
    need = 8 * (4 * images * width + 4 * images * classes + 3 * (width + 1) ** 2)
    if memory_mb is not None and need > memory_mb * (1 << 20):
        raise PermanentFailure(
            f"training a head on {images} embeddings of {width} values needs about "
            f"{need / (1 << 20):.0f} MiB, more than the {memory_mb} MiB this job holds; give the job "
            "more memory (--memory-mb) or label fewer images"
        )


def _skipped(labelled: Labelled, found: Extracted) -> dict[str, int]:
    """Files left out, by why: the result says so beside the counts it trained on."""
    skipped = dict(labelled.skipped)
    if found.unreadable:
        skipped["not a readable image"] = len(found.unreadable)
    return skipped


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise PermanentFailure(f"this kit cannot fine-tune: {exc}; install the onnx package") from None
    return onnx


def _extract(
    spec: dict[str, Any],
    report: Reporter,
    backbone: Any,
    embedding: str,
    manifest: Manifest,
    labelled: Labelled,
) -> Extracted:
    from agent.toolkit.finetune.compose import with_outputs

    onnx, total = _onnx(), len(labelled.paths) + 1
    outputs = [embedding, backbone.graph.output[0].name]
    with tempfile.TemporaryDirectory(prefix="fine-tune-", dir=report.results) as scratch:
        path = Path(scratch) / "extract.onnx"
        onnx.save(with_outputs(backbone, outputs), str(path))
        session = open_session(path, spec["threads"], spinning=False, quiet=True)[0]
        found = extract(
            session, manifest, labelled.paths, spec["threads"], lambda done: report.progress(done, total)
        )
    if len(found.unreadable) > MAX_UNREADABLE * len(labelled.paths):
        examples = ", ".join(f"{name} ({why})" for name, why in list(found.unreadable.items())[:3])
        raise PermanentFailure(
            f"{len(found.unreadable)} of {len(labelled.paths)} files are not readable images "
            f"(e.g. {examples}); remove them from the dataset or replace them"
        )
    for name, why in list(found.unreadable.items())[:20]:
        report.log(f"skipped {name}: {why}")
    return found


def _compose(
    spec: dict[str, Any],
    report: Reporter,
    backbone: Any,
    embedding: str,
    head: Head,
    classes: list[str],
    manifest: Manifest,
    params: FineTuneParams,
    scored: Scored,
) -> Manifest:
    onnx = _onnx()
    from agent.toolkit.finetune.compose import OUTPUT, compose

    origin = f"{manifest.name} {manifest.version} ({manifest.sha256[:12]})"
    model = compose(backbone, embedding, head.weights, head.bias, classes, origin)
    out = report.results / MODEL
    onnx.save(model, str(out))
    report.spend(out.stat().st_size)
    session = open_session(out, spec["threads"], cpu_only=True, quiet=True)[0]
    probe = seeded_input(session.get_inputs()[0], manifest.input.dtype, GOLDEN_SEED)
    golden = [
        float(v) for v in np.asarray(session.run(None, {session.get_inputs()[0].name: probe})[0]).ravel()[:16]
    ]
    tuned = manifest.model_copy(
        update={
            "version": _version(manifest.version),
            "labels": classes,
            "sha256": sha256_file(out),
            "size_bytes": out.stat().st_size,
            "scores": "probabilities",
            "source_model": f"{origin} fine-tuned on dataset {params.dataset} "
            f"({scored.val_count} validation images), embedding {embedding}",
            "golden": Golden(seed=GOLDEN_SEED, outputs={OUTPUT: golden}),
            "figures": {"accuracy_top1": scored.after_accuracy},
        }
    )
    _verify(out, tuned)
    (report.results / MANIFEST).write_text(tuned.model_dump_json(indent=2))
    return tuned


def _version(base: str) -> str:
    """The new version's name; the agent makes it unique when it installs (`-ft`, `-ft2`, ...)."""
    return f"{base[:24]}-ft"


def _verify(path: Path, manifest: Manifest) -> None:
    from agent.models.verify import VerificationFailed, check_in_process

    try:
        check_in_process(path, manifest)
    except VerificationFailed as exc:
        raise PermanentFailure(f"the fine-tuned model does not pass the install checks: {exc}") from None
