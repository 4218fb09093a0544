"""Checks a job must pass when submitted, and again when it starts (things change between).

At submit they become clear 4xx answers; at start the same checks fail the job for
good with the same message. `spec()` is what the worker process is given: the model
file and manifest already resolved, and folders already proven to be inside a root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.auth.tokens import Caller
from agent.energy import DEFAULT_TDP_W
from agent.errors import Conflict, Forbidden, Invalid, Refusal
from agent.jobs.admission import Capacity
from agent.jobs.credentials import SourceSecrets
from agent.jobs.paths import data_roots, dataset_folder, resolve_folder
from agent.jobs.sources import stream_source
from agent.jobs.submitter import Submitter, require_scope
from agent.jobs.unsure import unsure_folder
from agent.jobs.urls import needs_secret
from agent.models.store import ModelStore
from agent.wire import CommandParams, JobRequest, Manifest, QuantizeParams, StreamParams
from agent.wire.finetune import FineTuneParams


@dataclass
class Preparer:
    data_dir: Path
    models: ModelStore
    capacity: Capacity
    roots_setting: list[str]
    allowed_commands: list[str]
    max_result_bytes: int
    allowed_stream_hosts: list[str] = field(default_factory=list)
    tdp_w: float = DEFAULT_TDP_W  # the worker's energy estimate where nothing measures

    def check(self, request: JobRequest, caller: Caller | None) -> None:
        """Refuse a job that cannot run here; `caller` None means a schedule made it."""
        self.capacity.refuse_impossible(request.resources)
        if caller is not None:
            require_scope(request.kind, Submitter.of(caller))
        self.spec(request)

    def spec(self, request: JobRequest, resolve: bool = True) -> dict[str, Any]:
        """Everything the worker needs, resolved now (a stream URL's host name only with
        `resolve`: at start the worker resolves and checks it just before it connects)."""
        params = request.params
        spec: dict[str, Any] = {
            "kind": request.kind,
            "params": params,
            "threads": request.resources.threads,
            "memory_mb": request.resources.memory_mb,
            "max_result_bytes": self.max_result_bytes,
            "tdp_w": self.tdp_w,
        }
        if "model" in params:
            manifest, path = self._model(params["model"], params.get("version"))
            spec["model"] = {"manifest": manifest.model_dump(mode="json"), "path": str(path)}
            if isinstance(request.typed_params(), QuantizeParams):
                self._quantizable(manifest, params.get("output_version"))
            if isinstance(request.typed_params(), FineTuneParams):
                _backbone(manifest)
            if params.get("keep_unsure") is not None:
                spec["unsure"] = str(unsure_folder(manifest, self.data_dir))
        if "folder" in params or "dataset" in params:
            spec["input"], spec["root"] = (str(p) for p in self._input(params))
        if isinstance(request.typed_params(), StreamParams):
            spec["source"] = stream_source(
                params["source"],
                self._stream_roots(spec),
                manifest,
                self.allowed_stream_hosts,
                resolve,
            )
            if needs_secret(spec["source"]["location"]):
                spec["secrets"] = str(SourceSecrets.in_data_dir(self.data_dir).path)
        if isinstance(request.typed_params(), CommandParams):
            self._allowed(params["argv"][0])
        return spec

    def _stream_roots(self, spec: dict[str, Any]) -> list[Path]:
        """A source in an uploaded dataset is read from it alone, wherever the roots are."""
        if "dataset" in spec["params"]:
            return [Path(spec["root"])]
        return data_roots(self.roots_setting, self.data_dir)

    def _model(self, name: str, version: str | None) -> tuple[Manifest, Path]:
        try:
            return self.models.active(name, version)
        except Refusal as exc:
            raise Invalid(
                "model_not_deployed",
                exc.message,
                "deploy it first with `kitfleet deploy MODEL.onnx --kit KIT --activate`; "
                "`kitfleet models list KIT` shows what is there",
            ) from None

    def _quantizable(self, manifest: Manifest, output_version: str | None) -> None:
        if manifest.precision != "fp32":
            raise Invalid(
                "not_fp32",
                f"{manifest.name} {manifest.version} is already {manifest.precision}",
                "quantize an fp32 version",
            )
        target = output_version or f"{manifest.version}-int8"
        if self.models.has(manifest.name, target):
            raise Conflict(
                "version_exists",
                f"{manifest.name} {target} is already installed",
                "choose another output_version",
            )

    def _input(self, params: dict[str, Any]) -> tuple[Path, Path]:
        """(folder, the root it lies in) for a folder or an uploaded dataset."""
        if "dataset" in params:
            folder = dataset_folder(params["dataset"], self.data_dir)
            return folder, folder
        roots = data_roots(self.roots_setting, self.data_dir)
        folder = resolve_folder(params["folder"], roots)
        return folder, next(r for r in roots if folder == r or r in folder.parents)

    def _allowed(self, program: str) -> None:
        allowed = {os.path.normpath(p) for p in self.allowed_commands}
        if not allowed:
            raise Forbidden(
                "commands_disabled",
                "this kit does not run command jobs",
                "list allowed programs in jobs_allowed_commands in the kit's agent.json",
            )
        if not os.path.isabs(program) or os.path.normpath(program) not in allowed:
            raise Invalid(
                "program_not_allowed",
                f"{program!r} is not an allowed program here",
                f"allowed: {', '.join(sorted(allowed))} (absolute paths)",
            )


def _backbone(manifest: Manifest) -> None:
    """A fine-tune extends a classifier's final layer: a detector cannot be its backbone."""
    if manifest.task != "classification":
        raise Invalid(
            "not_a_classifier",
            f"{manifest.name} {manifest.version} is a {manifest.task} model; fine-tune needs a classifier",
            "give a deployed classifier as the backbone (--model)",
        )
