"""Model work for the window (list, activate, deploy, infer, quantize), run on the bridge's loop.

Every method is called on the GUI thread and only submits a coroutine; the coroutine runs on
the loop thread and answers with a signal carrying plain data. CPU-heavy steps (hashing,
quantizing, reading files) go to `asyncio.to_thread` so the loop keeps polling meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from agent.wire import ModelInfo
from app.fleet.client import KitClient
from app.fleet.deploy import async_deploy, prepare_package
from app.fleet.errors import Error
from app.fleet.gates import refused_kits
from app.fleet.inference import async_infer, read_input
from app.fleet.inspection import Overrides
from app.fleet.known_models import KnownModels
from app.fleet.precision_store import PrecisionChoices
from app.gui.bridges.base import SubBridge

# The quantizer imports onnx (0.8 s here, most of it ml_dtypes): only when a model is quantized,
# not at every start of the window.
if TYPE_CHECKING:
    from app.fleet.quantize import Mode

__all__ = ["ModelsBridge", "QuantizeRequest"]


@dataclass(frozen=True)
class QuantizeRequest:
    source: Path
    output: Path
    mode: Mode
    calibration: Path | None


class ModelsBridge(SubBridge):
    models_loaded = Signal(str, object)  # (device ID, list[ModelInfo])
    models_unavailable = Signal(str, str)  # (device ID, why the list could not be read)
    changed = Signal(str, str)  # (device ID, what was done, for the status bar)
    package_checked = Signal(object, object)  # (Path, Package: its manifest, inferred or beside it)
    deploy_progress = Signal(object)  # Progress, as app.fleet.deploy reports it
    deployed = Signal(object)  # list[DeployOutcome]
    inferred = Signal(str, object)  # (device ID, InferAnswer)
    quantized = Signal(object)  # QuantizeResult
    precision_loaded = Signal(str, object)  # (device ID, list[StoredChoice]: the variant chosen, why)
    gates_checked = Signal(object, object)  # (Path, {device ID: reasons} for kits its gates refuse)

    # called on the GUI thread ---------------------------------------------------------

    def load_models(self, device_id: str) -> None:
        self._submit("models", self._async_load(device_id))

    # each change is written into the kit's last-known models as soon as the kit confirms it
    def activate(self, device_id: str, name: str, version: str) -> None:
        async def activate(c: KitClient) -> None:
            self._known.confirmed(device_id, await c.activate(name, version))

        self._change("activate", device_id, activate, f"{name} {version} is now serving")

    def rollback(self, device_id: str, name: str) -> None:
        async def rollback(c: KitClient) -> None:
            self._known.confirmed(device_id, await c.rollback(name))

        self._change("roll back", device_id, rollback, f"{name} rolled back")

    def delete_version(self, device_id: str, name: str, version: str, force: bool) -> None:
        async def delete(c: KitClient) -> None:
            await c.delete_version(name, version, force)
            self._known.deleted(device_id, name, version)

        self._change("delete", device_id, delete, f"{name} {version} deleted")

    def check_package(self, model: Path, overrides: Overrides | None = None) -> None:
        self._submit("model check", self._async_check(model, overrides))

    def deploy(
        self,
        model: Path,
        device_ids: list[str],
        activate: bool,
        overrides: Overrides | None = None,
        force: bool = False,
    ) -> None:
        self._submit("deploy", self._async_deploy(model, device_ids, activate, overrides, force))

    def infer(self, device_id: str, name: str, version: str | None, source: Path) -> None:
        self._submit("inference", self._async_infer(device_id, name, version, source))

    def quantize(self, request: QuantizeRequest) -> None:
        self._submit("quantize", self._async_quantize(request))

    def _change(
        self, operation: str, device_id: str, call: Callable[[KitClient], Awaitable[object]], done: str
    ) -> None:
        self._submit(operation, self._async_change(device_id, call, done))

    # on the loop thread -----------------------------------------------------------------

    @property
    def _known(self) -> KnownModels:
        """The kits' last-known models, as the window's views read them (on the loop thread)."""
        return KnownModels(self._host.ops.snapshots)

    async def _async_load(self, device_id: str) -> None:
        try:
            infos = await self._on_kit(device_id, lambda c: c.models())
        except Error as exc:  # the tab says why; no window for a list nobody asked to change
            self.models_unavailable.emit(device_id, str(exc))
            return
        self._known.listed(device_id, infos)
        self.models_loaded.emit(device_id, infos)
        self.precision_loaded.emit(device_id, PrecisionChoices(self._host.fleet.inventory).of_kit(device_id))

    async def _async_change(
        self, device_id: str, call: Callable[[KitClient], Awaitable[object]], done: str
    ) -> None:
        async def change_then_list(client: KitClient) -> list[ModelInfo]:
            await call(client)
            return await client.models()

        try:
            infos = await self._on_kit(device_id, change_then_list)
        except Error:
            await self._async_load(device_id)  # refused: show what the kit holds now
            raise
        self._known.listed(device_id, infos)
        self.models_loaded.emit(device_id, infos)
        self.changed.emit(device_id, done)

    async def _async_check(self, model: Path, overrides: Overrides | None) -> None:
        # the manifest beside it (hashes the whole file), or one inspected from the file
        package = await asyncio.to_thread(prepare_package, model, overrides)
        self.package_checked.emit(model, package)
        inventory = self._host.fleet.inventory
        self.gates_checked.emit(model, refused_kits(inventory, inventory.kits(), package.manifest.requires))

    async def _async_deploy(
        self, model: Path, device_ids: list[str], activate: bool, overrides: Overrides | None, force: bool
    ) -> None:
        kits = [self._kit(device_id) for device_id in device_ids]
        fleet, progress = self._host.fleet, self.deploy_progress.emit
        known = self._known
        outcomes = await async_deploy(fleet, model, kits, activate, progress, known, overrides, force=force)
        self.deployed.emit(outcomes)

    async def _async_infer(self, device_id: str, name: str, version: str | None, source: Path) -> None:
        given = await asyncio.to_thread(read_input, source)
        answer = await async_infer(self._host.fleet, self._kit(device_id), name, given, version)
        self.inferred.emit(device_id, answer)

    async def _async_quantize(self, request: QuantizeRequest) -> None:
        self.quantized.emit(await asyncio.to_thread(_quantize, request))


def _quantize(request: QuantizeRequest) -> object:
    """The quantizer, imported on first use (in this worker thread, not on the loop)."""
    from app.fleet.quantize import quantize_model

    return quantize_model(request.source, request.output, request.mode, request.calibration)
