"""Checks of what the kit serves: each serving model verified again, the execution provider enabled.

The golden check runs in the same isolated child process an install uses (a model that crashes
ONNX Runtime cannot take the agent down), so a pre-flight trusts exactly what a deploy trusts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.facts import runtime
from agent.models.store import ModelStore
from agent.models.verifier import VerificationFailed, Verifier
from agent.toolkit.errors import Refusal
from agent.toolkit.hashing import sha256_file
from agent.wire import Manifest, PreflightCheck

__all__ = ["check_models", "check_providers"]


def check_models(store: ModelStore, golden: bool) -> list[PreflightCheck]:
    """One check per model with a serving version: its file on disk against its manifest."""
    return [_check_model(store, name, golden) for name in store.names()] or [
        PreflightCheck(
            id="models",
            status="warn",
            message="no model is deployed",
            action="deploy one: `kitfleet deploy MODEL.onnx --kit KIT` (or the window's Deploy)",
        )
    ]


def _check_model(store: ModelStore, name: str, golden: bool) -> PreflightCheck:
    check_id = f"model:{name}"[:64]
    try:
        manifest, path = store.active(name)
    except Refusal as exc:
        return PreflightCheck(id=check_id, status="warn", message=exc.message, action=exc.hint or "")
    redeploy = (
        f"deploy it again (`kitfleet deploy {name}.onnx --kit KIT`) "
        f"or roll back (`kitfleet models rollback KIT {name}`)"
    )
    try:
        digest = sha256_file(path)
    except OSError as exc:
        return PreflightCheck(
            id=check_id, status="fail", message=f"cannot read {path.name}: {exc}", action=redeploy
        )
    if digest != manifest.sha256:
        return PreflightCheck(
            id=check_id,
            status="fail",
            message=f"{name} {manifest.version}: the file on disk changed since install "
            f"(sha256 {digest[:12]}…, installed {manifest.sha256[:12]}…)",
            action=redeploy,
        )
    if not golden:
        return PreflightCheck(
            id=check_id, status="pass", message=f"{name} {manifest.version}: sha256 matches"
        )
    try:
        reverify(path, manifest)
    except VerificationFailed as exc:
        return PreflightCheck(
            id=check_id, status="fail", message=f"{name} {manifest.version}: {exc}", action=redeploy
        )
    checked = (
        "sha256, load and golden check" if manifest.golden else "sha256 and load (no golden in the manifest)"
    )
    return PreflightCheck(id=check_id, status="pass", message=f"{name} {manifest.version}: {checked} pass")


def reverify(path: Path, manifest: Manifest) -> None:
    """The install's checks again (size, sha256, then the child's load, signature and golden)."""
    checker = Verifier()
    try:
        checker.verify(path, manifest)
    finally:
        checker.close()


def check_providers(wanted: Sequence[str], sessions: dict[str, Any]) -> PreflightCheck:
    """The provider the mission needs (or the best the kit has) is what sessions really run on."""
    from agent.toolkit.sessions import CPU, choose_providers  # NumPy: not in an idle agent

    facts = runtime.collect()
    available = facts.providers or []
    fix = (
        "`kitfleet facts KIT` lists the providers the kit has; install the ONNX Runtime build "
        "and drivers for the one needed (`kitfleet provision USER@HOST`)"
    )
    if not facts.available:
        return PreflightCheck(
            id="provider", status="fail", message=facts.reason or "no ONNX Runtime", action=fix
        )
    missing = [p for p in wanted if p not in available]
    if missing:
        return PreflightCheck(
            id="provider",
            status="warn",
            message=f"{', '.join(missing)} not available: models would run on the CPU "
            f"(the kit has {', '.join(available) or 'none'})",
            action=fix,
        )
    fallen = [s for s in sessions.get("sessions", []) if s.get("fallback")]
    if fallen:
        return PreflightCheck(
            id="provider", status="warn", message=f"fell back to the CPU: {fallen[0]['fallback']}", action=fix
        )
    best = (list(wanted) or choose_providers(available))[0]
    on = "" if best == CPU else " (enabled in the sessions loaded)"
    return PreflightCheck(id="provider", status="pass", message=f"{best} available{on}")
