"""`kitfleet-agent import FILE.kfb`, and the agent's watched folder: check a bundle completely,
then apply its actions once.

Order: signature against the kit's trusted signers, every member's size and hash, that this kit is
a target, expiry, the actions' shape, room on the disk, then the sequence (accepted in the same
transaction that records the import). Only then are actions applied, each journalled, so a
re-import after a crash finishes what is left. One import at a time per data dir (a file lock
shared by the CLI and the running agent).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.audit import Actor, AuditLog
from agent.bundles.actions import ACTIONS, Context, check_actions
from agent.bundles.journal import Journal
from agent.bundles.signers import TrustedSigners
from agent.db import Database
from agent.errors import Busy, Forbidden, Invalid, NoRoom, Refusal, TooLarge
from agent.toolkit.bundlecheck import check_expiry, check_target
from agent.toolkit.bundles import BundleLimits, VerifiedBundle, open_bundle
from agent.toolkit.bundlesign import ed25519_verifier, manifest_signer
from agent.toolkit.hashing import sha256_file

__all__ = ["ImportResult", "import_bundle"]

LOCK_FILE = "bundle-import.lock"


@dataclass
class ImportResult:
    sha256: str
    sequence: int
    resumed: bool
    applied: list[dict[str, Any]] = field(default_factory=list)  # one per action, in order
    skipped: int = 0  # actions an earlier, interrupted import had finished


def import_bundle(ctx: Context, db: Database, device_id: str, path: Path) -> ImportResult:
    """Import `path` once; raises a Refusal (recorded, audited) saying why not."""
    journal, audit = Journal(db), AuditLog.of(db, ctx.settings)
    with _one_at_a_time(ctx.settings.data_dir):
        ctx.recover()
        ctx.verifier.prepare()  # the model checker imports ONNX Runtime while the bundle is hashed
        try:
            try:
                bundle = _checked(ctx, db, device_id, path)
            except Refusal as exc:
                _record_refusal(journal, audit, path, exc)
                raise
            started = journal.begin(bundle, _key_id(bundle.manifest_bytes))
            return _apply(ctx, journal, audit, bundle, started.done, started.resumed)
        finally:
            ctx.verifier.release()  # an idle kit keeps no checker process waiting


def _checked(ctx: Context, db: Database, device_id: str, path: Path) -> VerifiedBundle:
    signers = TrustedSigners(db)
    limit = max(ctx.settings.max_model_bytes, ctx.settings.max_dataset_bytes)
    bundle = open_bundle(path, _verifier(signers), BundleLimits(max_member_bytes=limit))
    if bundle.kind != "in":
        raise Invalid("not_a_bundle_in", "This file is a receipt, not a bundle for a kit.")
    check_target(bundle.manifest, device_id)
    if not Journal(db).interrupted(bundle.sha256):  # accepted before its expiry: it may finish
        check_expiry(bundle.manifest)
    check_actions(bundle)
    _check_limits(ctx, bundle)
    _check_room(ctx, bundle)
    return bundle


def _check_limits(ctx: Context, bundle: VerifiedBundle) -> None:
    """The upload limits, for every model and dataset at once: refused before anything is applied."""
    settings = ctx.settings
    for action in bundle.manifest.get("actions", []):
        if action["type"] == "model":
            size = bundle.member(str(action["member"])).size
            if size > settings.max_model_bytes:
                raise TooLarge(
                    "model_too_large",
                    f"a model in the bundle is {size} bytes; this kit takes {settings.max_model_bytes}",
                    "raise max_model_bytes in agent.json, or send a smaller model",
                )
        if action["type"] == "dataset":
            prefix = f"files/datasets/{action['name']}/"
            members = [m for m in bundle.members if m.path.startswith(prefix)]
            size = sum(m.size for m in members)
            if size > settings.max_dataset_bytes or len(members) > settings.max_dataset_files:
                raise TooLarge(
                    "dataset_too_large",
                    f"dataset {action['name']} has {len(members)} files, {size} bytes; this kit takes "
                    f"{settings.max_dataset_files} files, {settings.max_dataset_bytes} bytes",
                    "split it, or raise max_dataset_bytes / max_dataset_files in agent.json",
                )


def _verifier(signers: TrustedSigners) -> Any:
    trusted = signers.active()
    revoked = {s.key_id for s in signers.all() if s.revoked_at is not None}
    inner = ed25519_verifier(trusted)

    def verify(manifest_bytes: bytes, signature: bytes) -> bool:
        key_id = _key_id(manifest_bytes)
        if key_id in revoked:
            raise Forbidden(
                "signer_revoked",
                f"The bundle is signed by key '{key_id}', which this kit has revoked.",
                "Make the bundle again with the laptop's current key (kitfleet signer show).",
            )
        return inner(manifest_bytes, signature)

    return verify


def _check_room(ctx: Context, bundle: VerifiedBundle) -> None:
    """The whole payload must fit above the reserve before anything is applied."""
    needed = sum(m.size for m in bundle.members)
    free = shutil.disk_usage(ctx.settings.data_dir).free
    if free - needed < ctx.settings.disk_reserve_bytes:
        raise NoRoom(
            "insufficient_storage",
            f"the kit has {free >> 20} MiB free; this bundle needs {needed >> 20} MiB plus "
            f"{ctx.settings.disk_reserve_bytes >> 20} MiB in reserve; nothing was changed",
            "delete old model versions or datasets, then import the bundle again",
        )


def _apply(
    ctx: Context,
    journal: Journal,
    audit: AuditLog,
    bundle: VerifiedBundle,
    done: frozenset[int],
    resumed: bool,
) -> ImportResult:
    actor = Actor(f"signer:{_key_id(bundle.manifest_bytes)}", f"bundle {bundle.sha256[:12]}")
    result = ImportResult(bundle.sha256, bundle.sequence, resumed, skipped=len(done))
    for idx, action in enumerate(bundle.manifest.get("actions", [])):
        kind = str(action["type"])
        if idx in done:
            result.applied.append({"type": kind, "outcome": "done earlier"})
            continue
        try:
            target, detail = ACTIONS[kind](ctx, bundle, idx, action)
        except Refusal as exc:
            journal.action(
                bundle.sha256, idx, kind, "", "failed", {"error": exc.error, "message": exc.message}
            )
            message = f"action {idx + 1} ({kind}) failed: {exc.message}"
            journal.finish(bundle.sha256, "failed", message)
            audit.append(actor, "bundle.import", bundle.sha256, "failed", {"message": message[:200]})
            raise
        journal.action(bundle.sha256, idx, kind, target, "done", detail)
        result.applied.append({"type": kind, "target": target, "outcome": "done", **detail})
    journal.finish(bundle.sha256, "applied", _summary(result.applied))
    detail = {"sequence": bundle.sequence, "actions": len(result.applied), "resumed": resumed}
    audit.append(actor, "bundle.import", bundle.sha256, "ok", detail)
    return result


def _summary(applied: list[dict[str, Any]]) -> str:
    """What the receipt should say of an applied bundle beyond 'applied': an agent upgrade's
    new and previous venvs and what happens next (agent/bundles/upgrade.py)."""
    return "; ".join(
        f"{a['target']} installed in {a['venv']} (previous {a.get('previous_version', '?')} kept in "
        f"{a['previous']}); {a['restart']}"
        for a in applied
        if a["type"] == "agent_upgrade" and a.get("venv") and not a.get("already")
    )


def _record_refusal(journal: Journal, audit: AuditLog, path: Path, exc: Refusal) -> None:
    if exc.error == "bundle_replayed" and "imported already" in exc.message:
        sha = ""  # the file's own record stands; the audit says it came again
    else:
        sha = sha256_file(path) if path.is_file() else ""
        journal.refused(sha, None, "", exc.message)
    audit.append(
        Actor("", "kitfleet-agent import"),
        "bundle.import",
        sha or path.name[:100],
        "refused",
        {"error": exc.error, "message": exc.message[:200]},
    )


def _key_id(manifest_bytes: bytes) -> str:
    return str(manifest_signer(manifest_bytes).get("key_id", ""))[:64]


@contextmanager
def _one_at_a_time(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(
                "import_running",
                "another bundle import is running on this kit",
                "wait for it to finish, then import again",
                retry_after=10,
            ) from None
        yield
    finally:
        os.close(fd)
