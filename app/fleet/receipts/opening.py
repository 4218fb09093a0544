"""Open a receipt file: who signed it (checked against the certificate pinned at adoption, never
against the one the file carries), every member's hash, and the receipt's own contents.

Nothing of a receipt is believed before its signature is checked; after it, the contents are
still checked as hostile input (names, sizes, the kit named inside).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agent.toolkit.bundles import BundleLimits, VerifiedBundle, Verifier, open_bundle
from agent.toolkit.bundlesign import ECDSA_P256, certificate_verifier, manifest_signer
from agent.toolkit.errors import Forbidden, Invalid, Refusal
from agent.wire import format_device_id
from agent.wire.receipts import RECEIPT_KIND, RECEIPT_MEMBER, Receipt, log_member, result_member
from app.fleet.errors import Error
from app.fleet.inventory import Kit

__all__ = ["OpenedReceipt", "ReceiptRefused", "VerifiedReceipt", "open_receipt", "verify_receipt"]

PAYLOAD = "files/"
MAX_RECEIPT_JSON = 64 << 20
LIMITS = BundleLimits(max_total_bytes=4 << 30, max_member_bytes=1 << 30, max_members=2_000)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ReceiptRefused(Error):
    """A receipt that is not merged, and why."""


@dataclass
class OpenedReceipt:
    """A verified receipt, its members copied into `folder` (removed by `close`)."""

    path: Path
    kit: Kit
    sha256: str
    receipt: Receipt
    folder: Path

    def member(self, name: str) -> Path:
        return self.folder / PAYLOAD / name

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt file whose signature (by the pinned key of `kit`) and members were checked."""

    path: Path
    kit: Kit
    bundle: VerifiedBundle

    @property
    def sha256(self) -> str:
        return self.bundle.sha256

    @property
    def seq(self) -> int:
        return self.bundle.sequence


def verify_receipt(kits: Mapping[str, Kit], path: Path) -> VerifiedReceipt:
    """Check `path` against the pinned certificate of the kit it claims to come from (`kits`:
    the inventory's adopted kits by device ID), and every member's hash. Touches no database,
    so it may run in a worker thread. Raises ReceiptRefused saying why."""
    claimed: dict[str, Kit] = {}
    try:
        bundle = open_bundle(path, _verifier(kits, claimed), LIMITS)
    except Refusal as exc:
        raise ReceiptRefused(_said(path, exc)) from exc
    except OSError as exc:
        raise ReceiptRefused(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if bundle.kind != RECEIPT_KIND:
        raise ReceiptRefused(f"{path.name} is a bundle for kits, not a receipt: import it on a kit")
    return VerifiedReceipt(path, claimed["kit"], bundle)


def open_receipt(verified: VerifiedReceipt, scratch: Path) -> OpenedReceipt:
    """Read the receipt and copy its members under a new folder in `scratch` (re-hashed)."""
    path, kit = verified.path, verified.kit
    folder = Path(tempfile.mkdtemp(prefix=".receipt-", dir=scratch))
    try:
        try:
            receipt = _contents(verified.bundle, folder, path)
        except Refusal as exc:
            raise ReceiptRefused(_said(path, exc)) from exc
        if receipt.device_id != kit.device_id or receipt.seq != verified.seq:
            raise ReceiptRefused(f"{path.name} is signed by {kit.name} but its contents disagree; not merged")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return OpenedReceipt(path, kit, verified.sha256, receipt, folder)


def _verifier(kits: Mapping[str, Kit], claimed: dict[str, Kit]) -> Verifier:
    def verify(manifest_bytes: bytes, signature: bytes) -> bool:
        signer = manifest_signer(manifest_bytes)
        device_id = str(signer.get("device_id", ""))
        if signer.get("alg") != ECDSA_P256 or not _HEX64.match(device_id):
            raise Forbidden(
                "not_a_receipt",
                "it is not signed by a kit (a bundle for kits, or something else)",
                "receive only the DEVICE-SEQ.kfr files `kitfleet-agent export` writes",
            )
        kit = kits.get(device_id)
        if kit is None:
            raise Forbidden(
                "unknown_kit",
                f"it comes from kit {format_device_id(device_id)}, which this laptop never adopted",
                "adopt the kit first: a receipt is checked against the certificate pinned at adoption",
            )
        claimed["kit"] = kit
        if certificate_verifier(kit.cert_pem, kit.device_id)(manifest_bytes, signature):
            return True
        raise Forbidden(
            "impostor_receipt",
            f"it says it comes from {kit.name} ({format_device_id(kit.device_id)}) but is not signed "
            "by the key pinned for that kit at adoption: an impostor kit, or the file was altered",
            "nothing was merged; export the receipt again on the kit itself",
        )

    return verify


def _contents(bundle: VerifiedBundle, folder: Path, path: Path) -> Receipt:
    """The receipt, and its members checked against what it lists (no member it does not name)."""
    sizes = {m.path: m.size for m in bundle.members}
    size = sizes.get(PAYLOAD + RECEIPT_MEMBER)
    if size is None:
        raise ReceiptRefused(f"{path.name} holds no {RECEIPT_MEMBER}; not merged")
    if size > MAX_RECEIPT_JSON:
        raise ReceiptRefused(f"{path.name}: its {RECEIPT_MEMBER} is {size} bytes, over {MAX_RECEIPT_JSON}")
    _extract(bundle, folder, [PAYLOAD + RECEIPT_MEMBER])
    try:
        receipt = Receipt.model_validate_json((folder / PAYLOAD / RECEIPT_MEMBER).read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))[:120]
        raise ReceiptRefused(
            f"{path.name}: refused, its {RECEIPT_MEMBER} is not a receipt this app reads "
            f"({exc.error_count()} problem(s); {where}: {str(first.get('msg', ''))[:200]}); not merged"
        ) from exc
    expected = {PAYLOAD + RECEIPT_MEMBER: size}
    for job in receipt.jobs:
        if job.log_bytes:
            expected[PAYLOAD + log_member(job.info.job_id)] = job.log_bytes
        for result in job.results:
            expected[PAYLOAD + result_member(job.info.job_id, result.name)] = result.size
    for kept in receipt.unsure:  # the image of each unsure input, exactly its prediction's size
        expected[PAYLOAD + kept.member] = kept.item.size
    if expected != sizes:
        odd = sorted(set(sizes) ^ set(expected)) or [p for p in sizes if sizes[p] != expected.get(p)]
        raise Invalid("receipt_members", f"its members do not match what the receipt lists ({odd[0][:120]})")
    _extract(bundle, folder, [p for p in sizes if p != PAYLOAD + RECEIPT_MEMBER])
    return receipt


def _extract(bundle: VerifiedBundle, folder: Path, members: list[str]) -> None:
    """Copies in the scratch folder, re-hashed; what is kept is synced where it is kept."""
    for member in members:
        target = folder / member  # a checked member path (bundlenames): no '..', not absolute
        target.parent.mkdir(parents=True, exist_ok=True)
        bundle.extract_member(member, target, False)  # scratch: no folder sync


def _said(path: Path, refusal: Refusal) -> str:
    said = f"{path.name}: refused, {refusal.message.rstrip('.')}"
    return said + (f"; {refusal.hint[:1].lower()}{refusal.hint[1:]}" if refusal.hint else "")
