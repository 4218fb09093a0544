"""Open the job's model once, with the threads admission gave the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.jobs.errors import PermanentFailure
from agent.jobs.report import Reporter
from agent.models.infer import dynamic_batch, model_input
from agent.toolkit.sessions import open_session
from agent.wire import Manifest


def load(
    spec: dict[str, Any], report: Reporter, threads: int | None = None, spinning: bool = True
) -> tuple[Manifest, Any]:
    manifest = Manifest.model_validate(spec["model"]["manifest"])
    path = Path(spec["model"]["path"])
    if not path.is_file():
        raise PermanentFailure(f"{manifest.name} {manifest.version} was removed from the kit")
    session, fallback = open_session(path, threads or spec["threads"], spinning)
    if fallback:
        report.log(f"running on the CPU: {fallback}")
    report.log(
        f"model {manifest.name} {manifest.version} (sha256 {manifest.sha256[:12]}…) on "
        f"{', '.join(session.get_providers())}"
    )
    return manifest, session


def model_fields(manifest: Manifest) -> dict[str, str]:
    """What every result row carries, so rows stay traceable to the exact model."""
    return {"model": manifest.name, "version": manifest.version, "sha256": manifest.sha256}


def fixed_batch(session: Any, manifest: Manifest) -> int | None:
    """The batch size the model insists on, or None when its batch dimension is free."""
    return None if dynamic_batch(session, manifest) else int(model_input(session, manifest).shape[0])
