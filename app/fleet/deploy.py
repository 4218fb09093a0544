"""Deploy a model package to many kits at once: resumable, per-kit progress, others continue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from agent.wire import Manifest, ModelInfo
from app.fleet.client import KitClient
from app.fleet.errors import Error, KitUnreachable
from app.fleet.gates import async_gate_check
from app.fleet.inspection import Inspection, Overrides, inspect_model
from app.fleet.inventory import Kit
from app.fleet.known_models import KnownModels
from app.fleet.models import (
    ModelPackageError,
    check_described,
    check_self_contained,
    manifest_path,
    read_manifest,
)
from app.fleet.precision_advice import deploy_advice
from app.fleet.service import Fleet
from app.fleet.snapshot import Snapshots

CHUNK = 1 << 20
RETRIES = 3


@dataclass(frozen=True)
class Progress:
    kit: str
    stage: str  # "uploading" | "verifying" | "done" | "failed" | "retrying"
    sent: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class DeployOutcome:
    kit: Kit
    ok: bool
    message: str
    info: ModelInfo | None = None
    advice: str = ""
    gates: tuple[str, ...] = ()  # the manifest's requirements this kit does not meet (refused or forced)
    forced: bool = False


ProgressCallback = Callable[[Progress], None]


async def async_deploy(
    fleet: Fleet,
    model: Path,
    kits: list[Kit],
    activate: bool,
    progress: ProgressCallback | None = None,
    known: KnownModels | None = None,
    overrides: Overrides | None = None,
    package: Package | None = None,
    force: bool = False,
) -> list[DeployOutcome]:
    """Send `model` to every kit concurrently; a failure on one kit never stops the others.

    What each kit confirms is written into its last-known models at once (`known`: the window
    passes the one its views read). A model without a manifest is inspected (`overrides` say
    what the inspection cannot know); `package` is one already prepared for this model.
    A kit whose last-known facts miss the manifest's `requires` is refused before a byte is
    sent, unless `force` (audited here and on the kit, which checks again with live facts).
    A package whose checks fail (`Package.checks`) raises its ModelPackageError once every kit
    has stopped: none committed or activated anything."""
    known = known or KnownModels(Snapshots(fleet.inventory))
    if package is None:
        package = await async_prepare(model, overrides)
    report = progress or (lambda _: None)
    outcomes = await asyncio.gather(
        *(_deploy_one(fleet, package, kit, _Ask(activate, force), report, known) for kit in kits)
    )
    await package.checked()
    return list(outcomes)


@dataclass(frozen=True)
class _Ask:
    activate: bool
    force: bool


@dataclass(frozen=True)
class Package:
    """A model and the manifest it travels with: the one beside it, or one inferred from the file.
    `checks` is the file's checks against its manifest when they still run (`async_prepare`)."""

    model: Path
    manifest: Manifest
    inspection: Inspection | None = None  # how the manifest was inferred, when it was
    checks: asyncio.Future[None] | None = None

    async def checked(self) -> None:
        """Once the file's checks have ended: raises their ModelPackageError if they failed."""
        if self.checks is not None:
            await asyncio.shield(self.checks)  # one kit's cancelled deploy stops no other's checks

    def failed(self) -> bool:
        """The checks have ended, and failed: sending more is pointless."""
        return self.checks is not None and self.checks.done() and self.checks.exception() is not None


async def async_prepare(model: Path, overrides: Overrides | None = None) -> Package:
    """`prepare_package` for a deploy. A model with its manifest beside it is ready to send once
    the manifest is read and the file is known to be one self-contained ONNX model (a model
    that names another file never leaves the laptop); the sha256 against the manifest (reading
    the whole file again: 0.1 s per 100 MB) runs while its bytes go out, and each kit's upload
    waits for it before it commits anything. A model to inspect is inspected first, as before."""
    if not manifest_path(model).exists() or (overrides and overrides.given()):
        return await asyncio.to_thread(prepare_package, model, overrides)  # keep the loop free
    manifest = await asyncio.to_thread(_contained_manifest, model)
    return Package(
        model, manifest, checks=asyncio.ensure_future(asyncio.to_thread(check_described, model, manifest))
    )


def _contained_manifest(model: Path) -> Manifest:
    manifest = read_manifest(model)
    check_self_contained(model)
    return manifest


def prepare_package(model: Path, overrides: Overrides | None = None) -> Package:
    """`model` with the manifest beside it, or with one inspected from the file (with a golden check)."""
    given = overrides.given() if overrides else []
    if manifest_path(model).exists():
        if given:
            raise ModelPackageError(
                f"{model.name} has a manifest beside it ({manifest_path(model).name}), which decides "
                f"every field; leave out {' '.join(given)}, or edit that manifest, or remove it to have "
                "the model inspected"
            )
        return Package(model, checked_package(model))
    inspection = inspect_model(model, overrides, golden=True)  # also refuses external data
    return Package(model, inspection.manifest, inspection)


def checked_package(model: Path) -> Manifest:
    """The manifest of `model`, once the file is known to be the one it describes and one
    self-contained ONNX model."""
    manifest = read_manifest(model)
    check_described(model, manifest)  # the manifest's refusal first, as it always was
    check_self_contained(model)
    return manifest


async def _deploy_one(
    fleet: Fleet, package: Package, kit: Kit, ask: _Ask, report: ProgressCallback, known: KnownModels
) -> DeployOutcome:
    manifest = package.manifest
    advice = int8_advice(fleet, kit, manifest)
    gates = tuple(await async_gate_check(fleet, kit, manifest, ask.force))
    if gates and not ask.force:
        message = (
            f"refused: {manifest.name} {manifest.version} needs what {kit.name} lacks: {'; '.join(gates)}"
        )
        report(Progress(kit.name, "failed", 0, manifest.size_bytes, message))
        return DeployOutcome(
            kit, False, f"{message} (--force overrides, audited)", advice=advice, gates=gates
        )
    for attempt in range(1, RETRIES + 1):
        try:
            info = await fleet.async_call(kit, lambda client: _upload(client, package, ask, report))
        except KitUnreachable as exc:
            if attempt == RETRIES:
                report(Progress(kit.name, "failed", 0, manifest.size_bytes, str(exc)))
                return DeployOutcome(kit, False, f"{exc}; run deploy again to resume", advice=advice)
            report(Progress(kit.name, "retrying", 0, manifest.size_bytes, str(exc)))
            await asyncio.sleep(2.0 ** (attempt - 1))
        except Error as exc:
            report(Progress(kit.name, "failed", 0, manifest.size_bytes, str(exc)))
            return DeployOutcome(kit, False, str(exc), advice=advice, gates=gates, forced=bool(gates))
        else:
            known.confirmed(kit.device_id, info)
            report(Progress(kit.name, "done", manifest.size_bytes, manifest.size_bytes))
            state = "active" if info.active_version == manifest.version else "installed"
            said = f"{manifest.name} {manifest.version} {state}" + (
                " (forced past its gates)" if gates else ""
            )
            return DeployOutcome(kit, True, said, info, advice, gates, bool(gates))
    raise AssertionError("unreachable")


async def _upload(client: KitClient, package: Package, ask: _Ask, report: ProgressCallback) -> ModelInfo:
    manifest, activate = package.manifest, ask.activate
    if package.failed():  # already known: nothing reaches this kit
        await package.checked()
    status = await client.start_upload(manifest, activate, ask.force)
    if status.state == "installed":  # already there with the same sha256
        await package.checked()
        if activate:
            return await client.activate(manifest.name, manifest.version)
        return next(m for m in await client.models() if m.name == manifest.name)
    if status.offset < status.size:
        total = status.size

        def sent(n: int) -> None:
            report(Progress(client.name, "uploading", n, total))

        sent(status.offset)  # where this attempt starts: 0, or where a dropped link stopped

        try:
            await client.send_upload(status.upload_id, status.offset, _chunks(package, status.offset, sent))
        except Error:
            await _unless_changed(client, package, status.upload_id)  # a changed file is the cause
            raise
    await _unless_changed(client, package, status.upload_id)
    report(Progress(client.name, "verifying", status.size, status.size))
    return await client.commit_upload(status.upload_id)


async def _unless_changed(client: KitClient, package: Package, upload_id: str) -> None:
    """Once the file's checks have ended: when they failed, the kit lets the upload go and the
    package's ModelPackageError is raised."""
    try:
        await package.checked()
    except ModelPackageError:
        with contextlib.suppress(Error):  # else the kit lets the bytes go when the upload goes stale
            await client.abort_upload(upload_id)
        raise


async def _chunks(package: Package, offset: int, sent: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The file's bytes from `offset`, until its end or its checks fail (then the upload is cut
    short, and refused before its commit)."""
    try:
        with package.model.open("rb") as handle:
            handle.seek(offset)
            while not package.failed() and (chunk := await asyncio.to_thread(handle.read, CHUNK)):
                offset += len(chunk)
                yield chunk
                sent(offset)
    except OSError as exc:  # moved or deleted while it was sent: the kit keeps what came
        raise ModelPackageError(f"{package.model} could not be read: {exc.strerror or exc}") from None


def int8_advice(fleet: Fleet, kit: Kit, manifest: Manifest) -> str:
    """What the quantization measurement and this kit's last-known facts say about the model's
    precision here, in the words `kitfleet quantize` uses (`app.fleet.precision_advice`)."""
    known = fleet.inventory.last_facts(kit.device_id)
    return deploy_advice(kit.name, manifest, known[0] if known else None)
