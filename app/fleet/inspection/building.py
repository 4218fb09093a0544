"""A manifest from an ONNX file alone, with the reason for every field and what to check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.toolkit.hashing import sha256_file
from agent.wire import Manifest
from app.fleet.inspection.conventions import (
    choose_letterbox,
    choose_name,
    choose_normalise,
    choose_version,
    normalisation,
)
from app.fleet.inspection.facts import Facts, InspectionError, read_facts
from app.fleet.inspection.inputs import image_input, input_spec
from app.fleet.inspection.labels import BESIDE, Labels, find_labels
from app.fleet.inspection.outputs import Family, choose_family
from app.fleet.inspection.overrides import Overrides
from app.fleet.inspection.probe import needs_probe, probed

__all__ = ["Inspection", "inspect_model"]


@dataclass(frozen=True)
class Inspection:
    manifest: Manifest
    family: str  # classification | yolo | yolov8 | end2end | ssd | raw
    why: dict[str, str]  # manifest field -> how it was inferred
    warnings: tuple[str, ...]
    facts: Facts

    def rows(self) -> list[tuple[str, str, str]]:
        """(field, value, why) in the order a person reads them."""
        m = self.manifest
        size = f"{m.input.height}x{m.input.width}"
        labels = f"{len(m.labels)}: {', '.join(m.labels[:5])}{', …' if len(m.labels) > 5 else ''}"
        values = {
            "name": m.name,
            "version": m.version,
            "task": m.task,
            "family": self.family,
            "input": f"{m.input.name} ({m.input.layout}, {m.input.channels} channels)",
            "size": size,
            "dtype": m.input.dtype,
            "normalisation": self.why.get("normalise_name", ""),
            "letterbox": "on" if m.input.letterbox else "off",
            "labels": labels if m.labels else "none",
            "scores": m.scores,
            "score threshold": f"{m.detection.score_threshold:g}" if m.detection else "",
            "golden": "yes" if m.golden else "made when deployed or written",
        }
        return [(k, v, self.why.get(k, "")) for k, v in values.items() if v]

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.model_dump(mode="json"),
            "family": self.family,
            "why": {k: v for k, v in self.why.items() if k != "normalise_name"},
            "warnings": list(self.warnings),
            "doc_string": self.facts.doc_string,
            "producer": self.facts.producer,
            "opset": self.facts.opset,
            "metadata": {k: v[:500] for k, v in self.facts.metadata.items()},
        }


def inspect_model(path: Path, overrides: Overrides | None = None, *, golden: bool = False) -> Inspection:
    """Infer `path`'s manifest (`golden`: with the self-check the kit runs before install)."""
    given = overrides or Overrides()
    facts = read_facts(path)
    warnings: list[str] = []
    why: dict[str, str] = {}
    image = image_input(facts, given.task)
    spec, why["size"] = input_spec(facts, image, given.input_size)
    why["input"] = why["dtype"] = image.why
    probe = ""
    if needs_probe(facts) and given.task != "raw":  # free output shapes: run once to see them
        facts, probe = probed(facts, spec)
    family = choose_family(facts, given.task)
    why["task"] = why["family"] = f"{family.why} ({probe})" if probe else family.why
    letterbox, why["letterbox"] = choose_letterbox(facts, family, given.letterbox)
    spec = spec.model_copy(update={"letterbox": letterbox})
    labels = _labels(facts, family, given, warnings, why)
    normalise, why["normalisation"] = choose_normalise(facts, family, spec, given.normalise)
    why["normalise_name"] = normalise
    sha256 = sha256_file(path)
    name, why["name"] = choose_name(facts, given.name)
    version, why["version"] = choose_version(facts, sha256, given.version)
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "task": family.task,
        "input": spec,
        "normalisation": normalisation(normalise, spec.channels),
        "labels": list(labels),
        "sha256": sha256,
        "size_bytes": path.stat().st_size,
        "source_model": f"{path.name}" + (f", exported by {facts.producer}" if facts.producer else ""),
        "detection": _detection(family, given, warnings, why),
        "scores": family.scores if family.task == "classification" else "auto",
        "requires": given.requires,
    }
    why["scores"] = _scores_why(family)
    manifest = _validated(path, fields)
    if golden:
        manifest = _with_golden(path, manifest, warnings, why)
    return Inspection(manifest, family.name, why, tuple(warnings), facts)


def _labels(
    facts: Facts, family: Family, given: Overrides, warnings: list[str], why: dict[str, str]
) -> tuple[str, ...]:
    found: Labels | None = find_labels(facts, given.labels, warnings)
    if found is None:
        if family.task != "raw":
            why["labels"] = (
                f"none found: answers name classes by number; give --labels FILE or put "
                f"{' or '.join(BESIDE)} beside the model"
            )
        return ()
    if family.classes is not None and len(found.names) != family.classes:
        warnings.append(
            f"{found.source} names {len(found.names)} classes but the model scores {family.classes}: "
            "labels left out (answers name classes by number); give --labels FILE with "
            f"{family.classes} lines"
        )
        why["labels"] = f"{found.source} left out: {len(found.names)} names for {family.classes} classes"
        return ()
    why["labels"] = f"from {found.source}"
    return found.names


def _detection(family: Family, given: Overrides, warnings: list[str], why: dict[str, str]) -> Any:
    if family.detection is None:
        if given.score_threshold is not None:
            warnings.append(f"--score-threshold left out: only a detector has one (this is {family.task})")
        return None
    spec = family.detection
    if given.score_threshold is not None:
        spec = spec.model_copy(update={"score_threshold": given.score_threshold})
        why["score threshold"] = "from --score-threshold"
    else:
        why["score threshold"] = "kitfleet's default; give --score-threshold to change it"
    return spec


def _scores_why(family: Family) -> str:
    if family.task != "classification":
        return ""
    return {
        "probabilities": "the model ends in Softmax/Sigmoid: its scores are used as they are",
        "logits": "the model ends in a linear layer: the kit applies a softmax",
        "auto": "decided per answer (a row in 0-1 summing to 1 is taken as probabilities)",
    }[family.scores]


def _validated(path: Path, fields: dict[str, Any]) -> Manifest:
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise InspectionError(
            f"the manifest inferred for {path.name} is not valid ({problems}); give the field's flag"
        ) from None


def _with_golden(path: Path, manifest: Manifest, warnings: list[str], why: dict[str, str]) -> Manifest:
    """The kit's self-check before install: the toolkit's seeded input, free dimensions 1, as it feeds."""
    from app.fleet.quantmanifest import golden_for  # ONNX Runtime: only when a golden is made

    try:
        check = golden_for(path, manifest.input.dtype, manifest.precision)
    except Exception:  # ORT raises its own types on a probe input the model cannot take
        warnings.append(
            "no golden check: the model does not run on the kit's probe input (its free "
            "dimensions set to 1); the kit still checks that it loads and its signature, so "
            "deploy it as it is and try it with `kitfleet infer` once installed"
        )
        return manifest
    why["golden"] = (
        f"outputs on the toolkit's seeded input (seed {check.seed}), checked by the kit before install"
    )
    return manifest.model_copy(update={"golden": check})
