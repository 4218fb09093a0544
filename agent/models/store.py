"""Installed model versions on disk, with atomic install, activation and rollback.

Layout under `<data_dir>/models/`:
    <name>/versions/<version>/model.onnx + manifest.json
    <name>/state.json            {"active": version | null, "previous": version | null}
A version directory appears only by a rename of a complete, fsynced directory,
and `state.json` is only ever replaced whole, so a crash at any point leaves
either the old or the new version serving, never a half-written one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

from agent.errors import Conflict, Invalid, NotFound
from agent.toolkit.durable import fsync_path, write_atomic
from agent.wire import NAME_PATTERN, VERSION_PATTERN, Manifest, ModelInfo, ModelVersion

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
STATE_FILE = "state.json"
_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # serialises state changes, not inference
        self.recover()

    def recover(self) -> list[str]:
        """Remove what a crash left half-done: staging and trash directories, and the temp file
        of a `state.json` that was being replaced (the old one still stands)."""
        removed = []
        for leftover in self.root.glob(f"*/versions/{_STAGING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(str(leftover))
        for leftover in self.root.glob(f"*/versions/{_TRASH_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(str(leftover))
        for leftover in self.root.glob(f"*/.{STATE_FILE}.*.tmp"):  # storage.write_atomic's temp name
            leftover.unlink(missing_ok=True)
            removed.append(str(leftover))
        return removed

    # reading ------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "versions").is_dir()
        )

    def info(self, name: str) -> ModelInfo:
        check_name(name)
        state = self._state(name)
        versions = []
        for version in self._versions(name):
            manifest = self.manifest(name, version)
            installed = (self._version_dir(name, version) / MODEL_FILE).stat().st_mtime
            versions.append(
                ModelVersion(
                    version=version,
                    precision=manifest.precision,
                    sha256=manifest.sha256,
                    size_bytes=manifest.size_bytes,
                    installed_at=installed,
                    active=version == state["active"],
                )
            )
        if not versions:
            raise _not_found(name)
        task = self.manifest(name, versions[-1].version).task
        return ModelInfo(
            name=name,
            task=task,
            active_version=state["active"],
            previous_version=state["previous"],
            versions=sorted(versions, key=lambda v: v.installed_at),
        )

    def manifest(self, name: str, version: str) -> Manifest:
        path = self._version_dir(name, version) / MANIFEST_FILE
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(
                "version_not_found",
                f"model {name!r} has no version {version!r}",
                "`kitfleet models list KIT` shows its versions",
            ) from None

    def active(self, name: str, version: str | None = None) -> tuple[Manifest, Path]:
        """The manifest and file of the serving version (or of `version` when given)."""
        chosen = version or self._state(name)["active"]
        if chosen is None:
            if not self._versions(name):
                raise _not_found(name)
            raise Conflict(
                "no_active_version",
                f"model {name!r} has no active version",
                f"activate one: `kitfleet models activate KIT {name} VERSION` (or the Models tab)",
            )
        return self.manifest(name, chosen), self._version_dir(name, chosen) / MODEL_FILE

    def has(self, name: str, version: str) -> bool:
        return (self._version_dir(name, version) / MANIFEST_FILE).exists()

    # changing -----------------------------------------------------------------

    def install(self, manifest: Manifest, verified_file: Path) -> None:
        """Move a verified file into place as a new version (not yet active)."""
        with self._lock:
            if self.has(manifest.name, manifest.version):
                raise Conflict(
                    "version_exists",
                    f"{manifest.name} {manifest.version} is already installed",
                    "give the new model another version",
                )
            if (self.root / manifest.name).is_symlink():  # planted: it would install elsewhere
                raise Conflict(
                    "model_folder_is_a_link",
                    f"{self.root / manifest.name} is a link, not a folder of the kit's "
                    "own; nothing was installed through it",
                    "remove the link on the kit, or give the model another name",
                )
            versions = self.root / manifest.name / "versions"
            versions.mkdir(parents=True, exist_ok=True)
            staging = versions / f"{_STAGING_PREFIX}{manifest.version}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            os.replace(verified_file, staging / MODEL_FILE)
            write_atomic(staging / MANIFEST_FILE, manifest.model_dump_json(indent=2).encode())
            fsync_path(staging / MODEL_FILE)
            fsync_path(staging)
            os.replace(staging, versions / manifest.version)
            fsync_path(versions)

    def activate(self, name: str, version: str) -> ModelInfo:
        with self._lock:
            self.manifest(name, version)  # 404 unless installed
            state = self._state(name)
            if state["active"] != version:
                self._write_state(name, active=version, previous=state["active"])
            return self.info(name)

    def rollback(self, name: str) -> ModelInfo:
        with self._lock:
            state = self._state(name)
            previous = state["previous"]
            if previous is None or not self.has(name, previous):
                raise Conflict(
                    "nothing_to_roll_back", f"model {name!r} has no previous version to roll back to"
                )
            self._write_state(name, active=previous, previous=state["active"])
            return self.info(name)

    def delete(self, name: str, version: str, force: bool = False) -> None:
        with self._lock:
            self.manifest(name, version)
            state = self._state(name)
            if state["active"] == version and not force:
                raise Conflict(
                    "version_serving",
                    f"{name} {version} is the serving version",
                    "activate another version first (`kitfleet models activate`), or delete it anyway "
                    "with `kitfleet models delete ... --force`",
                )
            active = None if state["active"] == version else state["active"]
            previous = None if state["previous"] == version else state["previous"]
            if (active, previous) != (state["active"], state["previous"]):
                self._write_state(name, active=active, previous=previous)
            versions = self.root / name / "versions"
            trash = versions / f"{_TRASH_PREFIX}{version}-{time.monotonic_ns()}"
            os.replace(versions / version, trash)
            fsync_path(versions)
            shutil.rmtree(trash, ignore_errors=True)

    # internals ----------------------------------------------------------------

    def _version_dir(self, name: str, version: str) -> Path:
        check_name(name)
        if not re.fullmatch(VERSION_PATTERN, version):
            raise Invalid(
                "invalid_version",
                f"{version!r} is not a valid version",
                "use letters, digits, '.', '_', '+' and '-', starting with a letter or digit",
            )
        return self.root / name / "versions" / version

    def _versions(self, name: str) -> list[str]:
        versions = self.root / name / "versions"
        if not versions.is_dir():
            return []
        return [
            p.name for p in versions.iterdir() if not p.name.startswith(".") and (p / MANIFEST_FILE).exists()
        ]

    def _state(self, name: str) -> dict[str, str | None]:
        try:
            data = json.loads((self.root / name / STATE_FILE).read_text())
        except FileNotFoundError:
            return {"active": None, "previous": None}
        return {"active": data.get("active"), "previous": data.get("previous")}

    def _write_state(self, name: str, active: str | None, previous: str | None) -> None:
        state = json.dumps({"active": active, "previous": previous, "changed_at": time.time()})
        write_atomic(self.root / name / STATE_FILE, state.encode())


def check_name(name: str) -> str:
    """Refuse names that could leave the models folder (`..`, `/`, NUL, …)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise Invalid(
            "invalid_name",
            f"{name!r} is not a valid model name",
            "use lower-case letters, digits, '-' and '_', at most 64 characters",
        )
    return name


def _not_found(name: str) -> NotFound:
    return NotFound(
        "model_not_found", f"no model called {name!r} on this kit", "`kitfleet models list KIT` shows them"
    )
