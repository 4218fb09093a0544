"""The inferred manifest written beside the model, so later deploys use it as it is."""

from __future__ import annotations

from pathlib import Path

from agent.toolkit.durable import write_atomic
from agent.wire import Manifest
from app.fleet.inspection.facts import InspectionError
from app.fleet.models import manifest_path

__all__ = ["write_manifest"]


def write_manifest(model: Path, manifest: Manifest, force: bool = False) -> Path:
    """`MODEL.manifest.json` beside `model`, written durably; an existing one only with `force`."""
    target = manifest_path(model)
    if target.exists() and not force:
        raise InspectionError(f"{target} already exists: give --force to replace it")
    write_atomic(target, (manifest.model_dump_json(indent=2) + "\n").encode(), mode=0o644)
    return target
