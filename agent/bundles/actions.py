"""Each action a bundle carries, applied through the services the API uses: a model checked by the
same verifier and installed by the store (atomically, the serving version untouched until it is
activated), a dataset held to the upload limits, a job put in the durable queue.

Every action recognises its own finished effect, so applying one twice (a re-import after a kill
-9 between the effect and its journal mark) changes nothing the second time.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.auth.tokens import Caller
from agent.bundles.upgrade import apply_upgrade, check_upgrade
from agent.config import Settings
from agent.errors import Conflict, Invalid, NoRoom, NotFound
from agent.jobs.service import Jobs
from agent.models.store import ModelStore
from agent.models.verifier import VerificationFailed, Verifier
from agent.toolkit.bundles import VerifiedBundle
from agent.toolkit.durable import fsync_path
from agent.toolkit.hashing import sha256_file
from agent.wire import JobRequest, Manifest, ScheduleRequest

__all__ = ["ACTIONS", "Context", "Outcome", "check_actions"]

_TMP_PREFIX = ".bundle-"
Outcome = tuple[str, dict[str, Any]]  # (target, detail) for the journal


@dataclass
class Context:
    """The services a bundle is applied through, as the running agent or the CLI built them."""

    settings: Settings
    models: ModelStore
    verifier: Verifier
    jobs: Jobs
    running: bool = False  # the running agent applies it (an upgrade may restart it)

    def recover(self) -> None:
        """Remove what an import killed mid-copy left behind in the model folder."""
        for leftover in self.models.root.glob(f"{_TMP_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def check_actions(bundle: VerifiedBundle) -> list[dict[str, Any]]:
    """Refuse the whole bundle before anything is applied if any action is malformed."""
    actions = bundle.manifest.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise Invalid("bad_actions", "The bundle's action list is malformed.", "Create the bundle again.")
    for idx, action in enumerate(actions):
        kind = action.get("type")
        if kind not in ACTIONS:
            raise Invalid("bad_actions", f"Action {idx + 1} has unknown type {str(kind)[:40]!r}.")
        try:
            _CHECKS[kind](bundle, action)
        except (ValueError, KeyError, TypeError) as exc:
            raise Invalid("bad_actions", f"Action {idx + 1} ({kind}) is malformed: {exc}"[:500]) from None
    return actions


def _check_model(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    manifest = Manifest.model_validate(action["manifest"])
    member = bundle.member(str(action["member"]))
    if (member.sha256, member.size) != (manifest.sha256, manifest.size_bytes):
        raise ValueError("the model file does not match its manifest's sha256 and size")


def _check_dataset(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    str(action["name"])
    if not _dataset_members(bundle, action):
        raise ValueError("the dataset holds no files")


def _check_rollback(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    str(action["name"]), str(action["version"])


def _check_job(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    JobRequest.model_validate(action["request"])


def _check_schedule(bundle: VerifiedBundle, action: dict[str, Any]) -> None:
    ScheduleRequest.model_validate(action["request"])


# --- applying ---------------------------------------------------------------------------------


def apply_model(ctx: Context, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    manifest = Manifest.model_validate(action["manifest"])
    name, version = manifest.name, manifest.version
    if ctx.models.has(name, version):
        if ctx.models.manifest(name, version).sha256 != manifest.sha256:
            raise Conflict(
                "version_exists",
                f"{name} {version} is installed with other content",
                "give the new model another version",
            )
    else:
        _install(ctx, bundle, str(action["member"]), manifest)
    if action.get("activate", True):
        ctx.models.activate(name, version)
    return f"{name} {version}", {"sha256": manifest.sha256, "activated": bool(action.get("activate", True))}


def _install(ctx: Context, bundle: VerifiedBundle, member: str, manifest: Manifest) -> None:
    size = manifest.size_bytes
    if size > ctx.settings.max_model_bytes:
        raise Invalid(
            "model_too_large", f"the model is {size} bytes; the kit takes {ctx.settings.max_model_bytes}"
        )
    free = shutil.disk_usage(ctx.models.root).free
    if free - size < ctx.settings.disk_reserve_bytes:
        raise _no_room(free, size, ctx.settings.disk_reserve_bytes)
    folder = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=ctx.models.root))
    try:
        path = _disk_full_is_no_room(lambda: bundle.extract_member(member, folder / "model.onnx"))
        try:
            ctx.verifier.verify(path, manifest, digest=manifest.sha256)
        except VerificationFailed as exc:
            raise Invalid(
                "verification_failed",
                f"the model was refused: {exc}",
                "the serving version is unchanged; fix the model or manifest",
            ) from None
        _disk_full_is_no_room(lambda: ctx.models.install(manifest, path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def apply_rollback(ctx: Context, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    name, version = str(action["name"]), str(action["version"])
    if not ctx.models.has(name, version):
        raise NotFound(
            "version_not_installed",
            f"{name} {version} is not installed on this kit, so it cannot be rolled back to",
            "put the model version in the bundle (--model) as well",
        )
    ctx.models.activate(name, version)
    return f"{name} {version}", {"activated": True}


def apply_dataset(ctx: Context, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    name, members = str(action["name"]), _dataset_members(bundle, action)
    prefix = _prefix(action)
    folder = ctx.jobs.datasets.root / name
    if folder.is_dir() and _same_files(folder, bundle, members, prefix):
        return name, {"files": len(members), "already": True}

    def fill(staging: Path) -> None:
        targets = [(path, staging / path[len(prefix) :]) for path in members]
        folders = {target.parent for _, target in targets}
        for folder in sorted(folders):
            folder.mkdir(parents=True, exist_ok=True)
        bundle.extract_members(targets, sync=False)  # all synced at once below
        sync_files(staging, [target for _, target in targets])
        for folder in folders - {staging}:  # place() syncs the staging folder itself
            fsync_path(folder)

    total = sum(bundle.member(p).size for p in members)
    info = ctx.jobs.datasets.place(name, total, len(members), fill)
    return name, {"files": info.files, "bytes": info.size}


def apply_job(ctx: Context, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    request = JobRequest.model_validate(action["request"])
    if request.idempotency_key is None:  # the same bundle's job is the same job, once
        request = request.model_copy(update={"idempotency_key": f"bundle-{bundle.sha256[:48]}-{idx}"})
    job, created = ctx.jobs.submit(request, _caller(bundle))
    return job.job_id, {"kind": request.kind, "created": created}


def apply_schedule(ctx: Context, bundle: VerifiedBundle, idx: int, action: dict[str, Any]) -> Outcome:
    """A schedule, made once: one this bundle made already under the same name is its own."""
    request = ScheduleRequest.model_validate(action["request"])
    caller = _caller(bundle)
    made = ctx.jobs.queue.db.query(
        "SELECT id FROM schedules WHERE name = ? AND created_by = ?", (request.name, caller.token_id)
    )
    if made:
        return str(made[0]["id"]), {"name": request.name, "created": False}
    schedule = ctx.jobs.create_schedule(request, caller)
    return schedule.schedule_id, {"name": request.name, "created": True}


def _caller(bundle: VerifiedBundle) -> Caller:
    """Who acts for a bundle: an operator named after it (its jobs and schedules say which)."""
    signer = str(bundle.manifest.get("signer", {}).get("key_id", "?"))[:64]
    return Caller(
        f"bundle:{bundle.sha256[:32]}", f"bundle {bundle.sha256[:12]} (signer {signer})", "operator"
    )


def sync_files(folder: Path, files: list[Path]) -> None:
    """Make `files` durable: one syncfs(2) of their file system where Linux has it (a thousand
    images cost one flush, not a thousand fsyncs), else an fsync each."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    syncfs = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None) if name else None
    if syncfs is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in files:
        fsync_path(path)


def _dataset_members(bundle: VerifiedBundle, action: dict[str, Any]) -> list[str]:
    prefix = _prefix(action)
    return [p for p in bundle.member_paths() if p.startswith(prefix)]


def _prefix(action: dict[str, Any]) -> str:
    return f"files/datasets/{action['name']}/"


def _same_files(folder: Path, bundle: VerifiedBundle, members: list[str], prefix: str) -> bool:
    """True when the dataset on disk is exactly this bundle's (its earlier, unjournalled import)."""
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    if on_disk != sorted(p[len(prefix) :] for p in members):
        raise Conflict(
            "dataset_exists",
            f"dataset {folder.name!r} is already on the kit with other files",
            "name the dataset folder differently in the bundle",
        )
    return all(sha256_file(folder / p[len(prefix) :]) == bundle.member(p).sha256 for p in members)


def _disk_full_is_no_room(step: Callable[[], Any]) -> Any:
    try:
        return step()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise NoRoom(
            "disk_full",
            "the kit's disk filled up while the model was copied; nothing was installed",
            "free space on the kit, then import the bundle again",
        ) from None


def _no_room(free: int, size: int, reserve: int) -> NoRoom:
    return NoRoom(
        "insufficient_storage",
        f"the kit has {free >> 20} MiB free; this model needs {size >> 20} MiB "
        f"plus {reserve >> 20} MiB in reserve",
        "delete old model versions, then import the bundle again",
    )


Apply = Callable[[Context, VerifiedBundle, int, dict[str, Any]], Outcome]
ACTIONS: dict[str, Apply] = {
    "model": apply_model,
    "rollback": apply_rollback,
    "dataset": apply_dataset,
    "job": apply_job,
    "schedule": apply_schedule,
    "agent_upgrade": apply_upgrade,  # last in a bundle: the agent may restart after it
}
_CHECKS: dict[str, Callable[[VerifiedBundle, dict[str, Any]], None]] = {
    "model": _check_model,
    "rollback": _check_rollback,
    "dataset": _check_dataset,
    "job": _check_job,
    "schedule": _check_schedule,
    "agent_upgrade": check_upgrade,
}
