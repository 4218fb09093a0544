"""`kitfleet-agent export`: write a receipt bundle signed with the kit's TLS key.

The receipt (`agent/wire/receipts.py`) and each carried job's log are staged in a private
folder of the data dir; result files go in from the job folders as they are (a finished job's
results no longer change). The bundle is written to a temp file beside its final name and
renamed into place durably (`write_bundle`); only then is the export point moved on.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import Invalid, NotFound
from agent.identity import CERT_FILE, KEY_FILE
from agent.receipts.collect import Collected, ExportLimits, collect
from agent.receipts.state import FOLDER, ExportRecord, ExportState, export_lock
from agent.toolkit.bundles import write_bundle
from agent.toolkit.bundlesign import ECDSA_P256, certificate_signer
from agent.wire import device_id_from_der
from agent.wire.receipts import (
    RECEIPT_KIND,
    RECEIPT_MEMBER,
    RECEIPT_SUFFIX,
    Receipt,
    ReceiptCursors,
    log_member,
    result_member,
)

__all__ = ["ExportResult", "export"]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    receipt: Receipt


def export(
    data_dir: Path, out_dir: Path, since: int | None = None, limits: ExportLimits | None = None
) -> ExportResult:
    """Write `<device_id>-<seq>.kfr` into `out_dir` with what happened after the last export
    (or after receipt `since`; 0: everything the kit still holds)."""
    if not out_dir.is_dir():
        raise Invalid(
            "no_out_folder", f"{out_dir} is not a folder", "mount the stick, or make the folder first"
        )
    cert_pem, key_pem = _identity(data_dir)
    device_id = device_id_from_der(_der(cert_pem))
    with export_lock(data_dir):
        state = ExportState.load(data_dir)
        start, seq = state.start(since), state.next_seq
        found = collect(data_dir, start, limits or ExportLimits())
        receipt = _receipt(device_id, seq, start, found)
        path = out_dir / f"{device_id}-{seq}{RECEIPT_SUFFIX}"
        manifest = {
            "kind": RECEIPT_KIND,
            "signer": {"alg": ECDSA_P256, "device_id": device_id, "certificate": cert_pem},
            "targets": [],
            "sequence": seq,
            "expires_at": None,
            "summary": receipt.summary(),
        }
        with tempfile.TemporaryDirectory(dir=data_dir / FOLDER, prefix=".staging-") as staging:
            files = _stage(Path(staging), receipt, found)
            sha256 = write_bundle(path, manifest, files, certificate_signer(key_pem))
        state.record(
            ExportRecord(seq=seq, at=receipt.exported_at, file=path.name, sha256=sha256, end=found.end)
        )
        state.save(data_dir)
    return ExportResult(path, sha256, receipt)


def _identity(data_dir: Path) -> tuple[str, bytes]:
    cert, key = data_dir / CERT_FILE, data_dir / KEY_FILE
    if not (cert.is_file() and key.is_file()):
        raise NotFound(
            "no_identity",
            f"{data_dir} holds no kit identity ({CERT_FILE}, {KEY_FILE})",
            "pass the agent's --data-dir; a kit never started has nothing to export",
        )
    return cert.read_text(), key.read_bytes()


def _der(cert_pem: str) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(cert_pem)


def _receipt(device_id: str, seq: int, start: ReceiptCursors, found: Collected) -> Receipt:
    from agent import __version__

    return Receipt(
        device_id=device_id,
        seq=seq,
        exported_at=time.time(),
        agent_version=__version__,
        start=start,
        end=found.end,
        imports=found.imports,
        jobs=found.jobs,
        metrics=found.metrics,
        audit=found.audit,
        audit_kept_from=found.audit_kept_from,
        unsure=found.unsure.items,
        notes=found.notes[:50],
    )


def _stage(folder: Path, receipt: Receipt, found: Collected) -> list[tuple[str, Path]]:
    """The receipt and the logs as files in `folder`, and every member's (name, source)."""
    (folder / RECEIPT_MEMBER).write_bytes(receipt.model_dump_json().encode())
    files = [(RECEIPT_MEMBER, folder / RECEIPT_MEMBER)]
    for job_id, data in found.logs.items():
        staged = folder / f"{job_id}.log"
        staged.write_bytes(data)
        files.append((log_member(job_id), staged))
    files += [(result_member(job_id, name), path) for job_id, name, path in found.results]
    for n, (member, data) in enumerate(found.unsure.images.items()):
        staged = folder / f"unsure-{n}"
        staged.write_bytes(data)
        files.append((member, staged))
    return files
