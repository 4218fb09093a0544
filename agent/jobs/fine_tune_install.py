"""A finished fine-tune job, in the agent: install its model as a new version under a free
name, and activate it only when the job was asked to and the new model is better."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.jobs.layout import RESULTS, SPEC
from agent.models.store import ModelStore
from agent.toolkit.durable import write_atomic
from agent.wire import Manifest

__all__ = ["install_fine_tuned"]

MAX_TRIES = 100


def install_fine_tuned(models: ModelStore, folder: Path, result: dict[str, Any]) -> dict[str, Any]:
    results = folder / RESULTS
    manifest = Manifest.model_validate_json((results / "manifest.json").read_text())
    manifest = manifest.model_copy(update={"version": _free_version(models, manifest)})
    copy = results / ".install-model.onnx"
    copy.write_bytes((results / "model.onnx").read_bytes())  # install() moves the file it gets
    models.install(manifest, copy)
    asked = bool(json.loads((folder / SPEC).read_text())["params"].get("activate", False))
    activated = asked and bool(result.get("better"))
    if activated:
        models.activate(manifest.name, manifest.version)
    advice = str(result.get("advice", ""))
    if activated:
        advice = (
            f"{manifest.name} {manifest.version} now serves, as the job asked; roll back to the backbone "
            f"with `kitfleet models rollback KIT {manifest.name}` if it disappoints in the field."
        )
    elif asked:
        advice += " It was not activated although the job asked: it is not better than the backbone."
    done = {
        **result,
        "version": manifest.version,
        "advice": advice,
        "installed": {"name": manifest.name, "version": manifest.version, "activated": activated},
    }
    write_atomic(results / "manifest.json", manifest.model_dump_json(indent=2).encode())
    write_atomic(results / "result.json", (json.dumps(done, indent=2) + "\n").encode())
    return done


def _free_version(models: ModelStore, manifest: Manifest) -> str:
    """`<version>-ft`, else `-ft2`, `-ft3`, ...: a second fine-tune never collides with the first."""
    base = manifest.version
    for n in range(1, MAX_TRIES + 1):
        candidate = base if n == 1 else f"{base}{n}"
        if not models.has(manifest.name, candidate):
            return candidate
    return f"{base}{MAX_TRIES + 1}"  # install refuses it if taken: the job then fails saying so
