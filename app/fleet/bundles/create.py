"""`kitfleet bundle create`: one signed file carrying models, a rollback, datasets and jobs to
kits the laptop cannot reach.

Models are checked as `deploy` checks them (manifest against file, one self-contained ONNX file);
datasets are the image folders `jobs submit --upload` would send, under the same name; job specs
are the contract's `JobRequest`. Each target kit gets the next number in its own sequence, and the
bundle is signed by the key every target trusts.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.toolkit.bundles import write_bundle
from agent.toolkit.bundlesign import ed25519_signer, ed25519_signer_info
from agent.wire import JobRequest, Manifest, ScheduleRequest
from app.fleet.audit import AppAudit
from app.fleet.bundles.errors import BundleError
from app.fleet.bundles.ledger import Ledger
from app.fleet.bundles.upgrade import upgrade_action
from app.fleet.datasets import LocalDataset, scan
from app.fleet.deploy import checked_package
from app.fleet.errors import Error
from app.fleet.inventory import Inventory, Kit
from app.fleet.signing import SigningKey, SigningKeys, load_or_create

__all__ = ["BundleError", "BundlePlan", "Made", "create_bundle", "parse_expiry"]

MAX_DATASET_FILES = 100_000  # the kit's default max_dataset_files: refuse here what it would refuse


@dataclass
class BundlePlan:
    kits: list[Kit]
    models: list[Path] = field(default_factory=list)
    rollback: tuple[str, str] | None = None
    datasets: list[Path] = field(default_factory=list)
    jobs: list[Path] = field(default_factory=list)
    schedules: list[Path] = field(default_factory=list)
    agent_upgrade: Path | None = None  # a wheelhouse (packaging/wheelhouse.py)
    expires_s: float | None = 14 * 86400.0
    activate: bool = True


@dataclass(frozen=True)
class Made:
    path: Path
    sha256: str
    sequence: int
    signer: str
    actions: int


def parse_expiry(text: str) -> float | None:
    """`14d`, `12h`, `90m`, `never` → seconds (None: no expiry)."""
    if text.strip().lower() == "never":
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text.lower())
    if not found:
        raise BundleError(f"expiry {text!r}: give a number with d, h or m (e.g. 14d), or 'never'")
    return float(found[1]) * {"d": 86400, "h": 3600, "m": 60}[found[2]]


def create_bundle(home: Path, inventory: Inventory, audit: AppAudit, plan: BundlePlan, out: Path) -> Made:
    if not plan.kits:
        raise BundleError("no target kits: name them with --kit, or a tag with --tag")
    if not (
        plan.models or plan.rollback or plan.datasets or plan.jobs or plan.schedules or plan.agent_upgrade
    ):
        raise BundleError(
            "the bundle would carry nothing: add --model, --rollback-to, --dataset, --job, "
            "--schedule or --agent-upgrade"
        )
    ledger = Ledger(inventory)
    key = _signing_key(load_or_create(home), ledger, plan.kits)
    files: list[tuple[str, Path]] = []
    actions = _model_actions(plan, files) + _rollback_actions(plan)
    datasets = [_dataset(folder) for folder in plan.datasets]
    actions += [_dataset_action(d, files) for d in datasets]
    actions += [_job_action(spec, datasets) for spec in plan.jobs]
    actions += [_schedule_action(spec, datasets) for spec in plan.schedules]
    if plan.agent_upgrade is not None:  # last: the kit may restart into the new agent after it
        actions.append(upgrade_action(plan.agent_upgrade, files))
    now = time.time()
    manifest: dict[str, Any] = {
        "kind": "in",
        "created_at": now,
        "signer": ed25519_signer_info(key.public_key),
        "targets": [k.device_id for k in plan.kits],
        "expires_at": now + plan.expires_s if plan.expires_s is not None else None,
        "rollback": plan.rollback is not None,
        "actions": actions,
    }
    manifest["sequence"] = ledger.next_sequence(manifest["targets"])
    out.parent.mkdir(parents=True, exist_ok=True)
    sha = write_bundle(out, manifest, files, ed25519_signer(key.private_key))
    ledger.record(sha, str(out), manifest)
    for kit in plan.kits:
        audit.record(
            "bundle.create", sha[:16], "ok", kit.device_id, kit.name,
            {"sequence": manifest["sequence"], "actions": len(actions), "file": out.name},
        )  # fmt: skip
    return Made(out, sha, manifest["sequence"], key.key_id, len(actions))


def _signing_key(keys: SigningKeys, ledger: Ledger, kits: list[Kit]) -> SigningKey:
    """The key every target trusts: the current one unless a kit was not reached since a
    rotation, then the older key it still trusts (if all targets agree)."""
    trusted = {k.device_id: ledger.trusted_key(k.device_id) for k in kits}
    unknown = [k.name for k in kits if trusted[k.device_id] is None]
    if unknown:
        raise BundleError(
            f"{', '.join(unknown)} never learnt this laptop's signing key (adopted before bundles "
            "existed): run `kitfleet signer rotate` while they are reachable, or provision them again"
        )
    ids = set(trusted.values())
    if len(ids) > 1:
        raise BundleError(
            "the target kits trust different signing keys (some were not reached since the last "
            "rotation): make one bundle per group, or rotate again while all are reachable"
        )
    key = keys.by_id(ids.pop() or "")
    if key is None:
        raise BundleError("the key these kits trust is no longer on this laptop; provision them again")
    return key


def _model_actions(plan: BundlePlan, files: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    actions = []
    for model in plan.models:
        try:
            manifest: Manifest = checked_package(model)
        except Error as exc:
            raise BundleError(f"{model}: {exc}") from exc
        member = f"models/{manifest.name}-{manifest.version}.onnx"
        files.append((member, model))
        actions.append(
            {
                "type": "model",
                "member": f"files/{member}",
                "manifest": json.loads(manifest.model_dump_json()),
                "activate": plan.activate,
            }
        )
    return actions


def _rollback_actions(plan: BundlePlan) -> list[dict[str, Any]]:
    if plan.rollback is None:
        return []
    name, version = plan.rollback
    return [{"type": "rollback", "name": name, "version": version}]


def _dataset(folder: Path) -> LocalDataset:
    try:
        dataset = scan(folder)
    except Error as exc:
        raise BundleError(str(exc)) from exc
    if dataset.files > MAX_DATASET_FILES:
        raise BundleError(f"{folder} holds {dataset.files} images; a kit takes {MAX_DATASET_FILES}")
    return dataset


def _dataset_action(dataset: LocalDataset, files: list[tuple[str, Path]]) -> dict[str, Any]:
    for entry in dataset.entries:
        name = entry.path.relative_to(dataset.folder).as_posix()
        files.append((f"datasets/{dataset.name}/{name}", entry.path))
    return {"type": "dataset", "name": dataset.name, "files": dataset.files}


def _job_action(spec: Path, datasets: list[LocalDataset]) -> dict[str, Any]:
    """A job spec (JobRequest JSON); `params.dataset` may name a --dataset folder by its folder
    name, replaced by the name the dataset gets on the kit."""
    data = _spec(spec, "job")
    _name_datasets(data, datasets)
    try:
        request = JobRequest.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{spec}: not a valid job: {exc.errors()[0].get('msg', exc)}") from exc
    return {"type": "job", "request": json.loads(request.model_dump_json(exclude_unset=True))}


def _schedule_action(spec: Path, datasets: list[LocalDataset]) -> dict[str, Any]:
    """A schedule spec (ScheduleRequest JSON: name, cron, job), its job's dataset named as above."""
    data = _spec(spec, "schedule")
    if isinstance(data.get("job"), dict):
        _name_datasets(data["job"], datasets)
    try:
        request = ScheduleRequest.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"{spec}: not a valid schedule: {exc.errors()[0].get('msg', exc)}") from exc
    return {"type": "schedule", "request": json.loads(request.model_dump_json(exclude_unset=True))}


def _spec(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable JSON {what} spec ({exc})") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path}: a {what} spec is a JSON object")
    return data


def _name_datasets(job: dict[str, Any], datasets: list[LocalDataset]) -> None:
    params = job.get("params")
    if isinstance(params, dict) and isinstance(params.get("dataset"), str):
        by_folder = {d.folder.name: d.name for d in datasets}
        params["dataset"] = by_folder.get(params["dataset"], params["dataset"])
