"""Model packages on the laptop: find and check the manifest that travels with an ONNX file."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from agent.toolkit import onnxfile
from agent.toolkit.errors import Refusal
from agent.toolkit.hashing import sha256_file
from agent.wire import Manifest
from app.fleet.errors import Error


class ModelPackageError(Error):
    pass


def manifest_path(model: Path) -> Path:
    """`model.onnx` → `model.manifest.json` beside it."""
    return model.with_name(f"{model.stem}.manifest.json")


def load_package(model: Path) -> Manifest:
    """The manifest of `model`, checked against the file it describes."""
    manifest = read_manifest(model)
    check_described(model, manifest)
    return manifest


def read_manifest(model: Path) -> Manifest:
    """The manifest beside `model`, valid as a manifest but not yet held against the file."""
    if not model.is_file():
        raise ModelPackageError(f"{model} does not exist or is not a file")
    path = manifest_path(model)
    if not path.exists():
        raise ModelPackageError(
            f"{model} has no manifest ({path.name} beside it); `kitfleet deploy {model.name} --kit KIT` "
            f"infers one, and `kitfleet models inspect {model.name} --write-manifest` saves it to edit"
        )
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ModelPackageError(f"{path} is not a valid manifest: {problems}") from None


def check_described(model: Path, manifest: Manifest) -> None:
    """Refuse `model` when its size or sha256 is not the one its manifest gives."""
    try:
        differs = model.stat().st_size != manifest.size_bytes or sha256_file(model) != manifest.sha256
    except OSError as exc:  # moved or deleted since its manifest was read
        raise ModelPackageError(f"{model} could not be read: {exc.strerror or exc}") from None
    if differs:
        raise ModelPackageError(
            f"{manifest_path(model).name} does not describe {model.name} (size or sha256 differ); the "
            "model was changed after the manifest was written: re-create the manifest"
        )


def check_self_contained(path: Path) -> None:
    """Refuse a model that is not one self-contained file before it is sent (the kit's own check)."""
    try:
        onnxfile.check_self_contained(path)
    except Refusal as exc:
        raise ModelPackageError(f"{exc.message}: {exc.hint}" if exc.hint else exc.message) from None
