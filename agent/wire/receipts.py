"""A kit's receipt: what ran on it since its last export, carried back to the laptop by hand.

`kitfleet-agent export` writes it as a bundle of kind "receipt" signed with the kit's TLS key;
`kitfleet bundle receive` checks that signature against the certificate the app pinned and
merges the contents as if it had pulled them over the network. Members: `receipt.json`
(a `Receipt`), each reported job's log as `logs/<job_id>.txt` and its result files as
`results/<job_id>/<name>`, and the inputs a model was unsure about (`agent/jobs/unsure.py`) as
`unsure/<model>/<id>.<ext>` with their predictions in the receipt. Every list is bounded here,
so a hostile receipt cannot make the laptop parse without end.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from agent.wire.audit import AuditEntry
from agent.wire.base import WireModel
from agent.wire.facts import MetricSample
from agent.wire.field_datasets import UNSURE_ID_PATTERN, UnsureItem
from agent.wire.jobs import RESULT_FILES, JobInfo, ResultFile

__all__ = [
    "MAX_RECEIPT_AUDIT",
    "MAX_RECEIPT_IMPORTS",
    "MAX_RECEIPT_JOBS",
    "MAX_RECEIPT_SAMPLES",
    "MAX_RECEIPT_UNSURE",
    "MAX_UNSURE_IMAGE",
    "RECEIPT_FORMAT",
    "RECEIPT_KIND",
    "RECEIPT_MEMBER",
    "RECEIPT_SUFFIX",
    "ImportReceipt",
    "Receipt",
    "ReceiptCursors",
    "ReceiptJob",
    "ReceiptUnsure",
    "log_member",
    "result_member",
    "unsure_member",
]

RECEIPT_KIND = "receipt"
RECEIPT_FORMAT = 1
RECEIPT_SUFFIX = ".kfr"
RECEIPT_MEMBER = "receipt.json"
MAX_RECEIPT_JOBS = 500
MAX_RECEIPT_SAMPLES = 60_480  # a week at the agent's default 10 s interval
MAX_RECEIPT_AUDIT = 20_000
MAX_RECEIPT_IMPORTS = 1_000
MAX_RECEIPT_UNSURE = 500  # kept inputs in one receipt
MAX_UNSURE_IMAGE = 16 << 20  # the kit keeps none larger (agent/jobs/unsure.py MAX_KEPT_IMAGE)
UNSURE_KINDS = ("jpg", "png", "bmp", "webp")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # agent.wire.models.NAME_PATTERN
_JOB_ID = re.compile(r"^[0-9a-f]{8,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def log_member(job_id: str) -> str:
    return f"logs/{job_id}.txt"


def result_member(job_id: str, name: str) -> str:
    return f"results/{job_id}/{name}"


def unsure_member(model: str, item_id: str, kind: str) -> str:
    return f"unsure/{model}/{item_id}.{kind}"


class ReceiptCursors(WireModel):
    """Where an export stopped: the next one starts after these."""

    audit_seq: int = Field(default=0, ge=0, description="last audit entry exported")
    audit_hash: str = Field(default="", description="its hash: the next receipt links to it")
    metrics_seq: int = Field(default=-1, ge=-1, description="last metrics sample exported")
    jobs_updated_at: float = Field(default=0.0, description="kit time of the newest job change exported")
    imports_at: float = Field(default=0.0, description="kit time of the newest import record exported")
    unsure_after: str = Field(
        default="",
        pattern=r"^([0-9a-f]{24})?$",
        description="id of the newest kept input exported (ids sort oldest first); '': none yet",
    )


class ImportReceipt(WireModel):
    """One bundle the kit imported, is applying, or refused, as its import record says."""

    bundle_sha256: str
    sequence: int | None = None
    signer: str = Field(default="", max_length=256, description="the key id that signed it")
    outcome: str = Field(max_length=32, description="applying, applied, failed or refused")
    message: str = Field(default="", max_length=2000)
    actions: int = Field(default=0, ge=0, description="actions the bundle carried")
    started_at: float
    at: float = Field(description="kit time of the record's last change")

    @field_validator("bundle_sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("bundle_sha256 must be 64 lowercase hex digits")
        return value


class ReceiptJob(WireModel):
    """A job that changed since the last export, with its log and result files when carried."""

    info: JobInfo
    log_bytes: int = Field(default=0, ge=0, description="size of logs/<job_id>.txt; 0: not carried")
    log_truncated: bool = False
    results: list[ResultFile] = Field(default_factory=list, max_length=len(RESULT_FILES))
    results_left_out: str = Field(default="", description="why result files stayed on the kit")

    @field_validator("info")
    @classmethod
    def _job_id(cls, info: JobInfo) -> JobInfo:
        if not _JOB_ID.match(info.job_id):
            raise ValueError(f"job id {info.job_id[:80]!r} is not a kit's job id")
        return info

    @field_validator("results")
    @classmethod
    def _names(cls, results: list[ResultFile]) -> list[ResultFile]:
        for result in results:
            if result.name not in RESULT_FILES:
                raise ValueError(f"{result.name[:80]!r} is not a result file a job writes")
        return results


class ReceiptUnsure(WireModel):
    """A kept input the model was unsure about: its prediction here, its image as
    `unsure/<model>/<id>.<kind>` (exactly `item.size` bytes)."""

    item: UnsureItem
    kind: str = Field(description="the image's kind: jpg, png, bmp or webp")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in UNSURE_KINDS:
            raise ValueError(f"{value[:20]!r} is not an image kind a kit keeps")
        return value

    @field_validator("item")
    @classmethod
    def _item(cls, item: UnsureItem) -> UnsureItem:
        if not re.fullmatch(UNSURE_ID_PATTERN, item.id):
            raise ValueError(f"{item.id[:80]!r} is not a kept input's id")
        if not _MODEL.match(item.model):
            raise ValueError(f"{item.model[:80]!r} is not a model name")
        if not 0 < item.size <= MAX_UNSURE_IMAGE:
            raise ValueError(f"a kept input of {item.size} bytes: a kit keeps 1 to {MAX_UNSURE_IMAGE}")
        if len(item.classes) > 10 or len(item.version) > 64 or len(item.source) > 300:
            raise ValueError("a kept input's prediction is larger than a kit writes")
        return item

    @property
    def member(self) -> str:
        return unsure_member(self.item.model, self.item.id, self.kind)


class Receipt(WireModel):
    """`receipt.json`: the kit, the range it covers and what happened in it."""

    format: int = RECEIPT_FORMAT
    device_id: str
    seq: int = Field(ge=1, description="this kit's receipt number, one more each export")
    exported_at: float
    agent_version: str = ""
    start: ReceiptCursors = Field(description="where this receipt continues from")
    end: ReceiptCursors = Field(description="where it stops: the next receipt's start")
    imports: list[ImportReceipt] = Field(default_factory=list, max_length=MAX_RECEIPT_IMPORTS)
    jobs: list[ReceiptJob] = Field(default_factory=list, max_length=MAX_RECEIPT_JOBS)
    metrics: list[MetricSample] = Field(default_factory=list, max_length=MAX_RECEIPT_SAMPLES)
    audit: list[AuditEntry] = Field(default_factory=list, max_length=MAX_RECEIPT_AUDIT)
    audit_kept_from: int = Field(default=1, ge=1, description="the kit's first kept audit entry")
    unsure: list[ReceiptUnsure] = Field(default_factory=list, max_length=MAX_RECEIPT_UNSURE)
    notes: list[str] = Field(default_factory=list, max_length=50, description="bounds met, left-outs")

    @field_validator("device_id")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("device_id must be 64 lowercase hex digits")
        return value

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "imports": len(self.imports),
            "jobs": len(self.jobs),
            "metrics": len(self.metrics),
            "audit": len(self.audit),
            "unsure": len(self.unsure),
        }
