"""The audit log: what each kit records, and the hash chain that proves nothing was changed."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import Field

from agent.wire.base import WireModel

__all__ = [
    "AUDITED_CALLS",
    "AUDIT_GENESIS",
    "AUDIT_REFUSALS",
    "AUDIT_SEGMENT",
    "AuditCheck",
    "AuditEntry",
    "ChainCheck",
    "audit_hash",
    "audit_subject",
    "audited_call",
    "verify_chain",
]


AUDIT_GENESIS = "0" * 64  # prev_hash of the first entry


# The kit's own entries about its log: the first entry of each segment after the first (saying
# from which entry the log is kept), and the count of refusals collapsed into one entry.
AUDIT_SEGMENT = "audit.segment"


AUDIT_REFUSALS = "audit.refusals"


# The calls each kit records in its audit log, and under which action: the app names its own
# log's entries from the same table, so the two logs speak of the same things.
AUDITED_CALLS: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/pair", "kit.adopt"),
    ("DELETE", "/v1/tokens/{token_id}", "token.revoke"),
    ("POST", "/v1/uploads", "model.upload"),
    ("DELETE", "/v1/uploads/{upload_id}", "model.upload_abort"),
    ("POST", "/v1/uploads/{upload_id}/commit", "model.deploy"),
    ("POST", "/v1/models/{name}/activate", "model.activate"),
    ("POST", "/v1/models/{name}/rollback", "model.rollback"),
    ("DELETE", "/v1/models/{name}/versions/{version}", "model.delete"),
    ("POST", "/v1/jobs", "job.submit"),
    ("POST", "/v1/jobs/{job_id}/cancel", "job.cancel"),
    ("DELETE", "/v1/jobs/{job_id}", "job.delete"),
    ("PUT", "/v1/datasets/{name}", "dataset.upload"),
    ("POST", "/v1/datasets/{name}/upload/commit", "dataset.upload"),  # a resumed upload, complete
    ("DELETE", "/v1/datasets/{name}", "dataset.delete"),
    ("POST", "/v1/datasets/{name}/labelled", "dataset.label"),
    ("DELETE", "/v1/datasets/{name}/labelled/{label}/{file}", "dataset.unlabel"),
    ("POST", "/v1/unsure/{item_id}/label", "unsure.label"),
    ("DELETE", "/v1/unsure/{item_id}", "unsure.delete"),
    ("POST", "/v1/clock", "kit.clock"),
    ("POST", "/v1/schedules", "schedule.create"),
    ("PATCH", "/v1/schedules/{schedule_id}", "schedule.update"),
    ("DELETE", "/v1/schedules/{schedule_id}", "schedule.delete"),
    ("POST", "/v1/preflight", "kit.preflight"),
)


_AUDITED = tuple(
    (method, re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"), action)
    for method, path, action in AUDITED_CALLS
)


def audited_call(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The audit action of a call and its path parameters, or None when it is not audited."""
    for wanted, pattern, action in _AUDITED:
        if wanted == method and (match := pattern.match(path)):
            return action, match.groupdict()
    return None


def audit_subject(
    action: str, params: dict[str, str], request: Any, response: Any
) -> tuple[str, dict[str, Any]]:
    """What a call acted on (the target) and the few facts worth keeping, from its bodies."""
    ask: dict[str, Any] = request if isinstance(request, dict) else {}
    got: dict[str, Any] = response if isinstance(response, dict) else {}
    manifest: dict[str, Any] = ask["manifest"] if isinstance(ask.get("manifest"), dict) else {}
    job: dict[str, Any] = ask["job"] if isinstance(ask.get("job"), dict) else ask
    params_of_job = job.get("params")
    job_params: dict[str, Any] = params_of_job if isinstance(params_of_job, dict) else {}
    picks: dict[str, Any] = {
        "kit.adopt": {"scope": ask.get("scope"), "app_id": ask.get("app_id")},
        "model.upload": {k: manifest.get(k) for k in ("sha256", "precision", "size_bytes")}
        | {"activate": ask.get("activate")}
        | ({"force": True, "gates_overridden": got.get("gates_overridden")} if ask.get("force") else {}),
        "model.rollback": {"active_version": got.get("active_version")},
        "model.deploy": {"model": got.get("name"), "active_version": got.get("active_version")},
        "job.submit": {"kind": job.get("kind"), "label": job.get("label"), "model": job_params.get("model")},
        "schedule.create": {"name": ask.get("name"), "cron": ask.get("cron"), "kind": job.get("kind")},
        "schedule.update": {k: ask.get(k) for k in ("cron", "enabled", "missed")},
        "kit.preflight": {"ready": got.get("ready"), "not_passed": _not_passed(got)},
        "kit.clock": {k: got.get(k) for k in ("adjusted_s", "via")},
        "dataset.label": {k: got.get(k) for k in ("file", "added", "images")},
        "unsure.label": {k: got.get(k) for k in ("dataset", "file", "images")},
    }
    detail = {k: v for k, v in picks.get(action, {}).items() if v is not None}
    target = {
        "kit.adopt": got.get("token_id", ""),
        "model.upload": _words(manifest.get("name"), manifest.get("version")),
        "model.deploy": _newest_version(got),
        "model.activate": _words(params.get("name"), ask.get("version")),
        "job.submit": got.get("job_id", ""),
        "schedule.create": got.get("schedule_id", ""),
    }.get(action) or " ".join(params.values())
    return str(target), detail


def _not_passed(answer: dict[str, Any]) -> list[str] | None:
    """`id: status` of a pre-flight's checks that did not pass (None when it was refused)."""
    checks = answer.get("checks")
    if not isinstance(checks, list):
        return None
    shown = [c for c in checks if isinstance(c, dict) and c.get("status") != "pass"]
    return [f"{c.get('id')}: {c.get('status')}" for c in shown]


def _words(*values: Any) -> str:
    """The string values joined by spaces: a refused body may hold anything where a name goes."""
    return " ".join(v for v in values if isinstance(v, str) and v)


def _newest_version(info: dict[str, Any]) -> str:
    """`name version` of the version a commit just installed: the newest in its ModelInfo."""
    versions = [v for v in info.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        return ""
    newest = max(versions, key=lambda v: v.get("installed_at") or 0)
    return f"{info.get('name', '')} {newest.get('version', '')}"


class AuditEntry(WireModel):
    """One line of a kit's append-only audit log; `hash` chains it to the line before."""

    seq: int = Field(
        ge=1,
        description="1, 2, 3… without gaps from the first entry kept (the "
        "oldest segments are dropped to bound the log: GET /v1/audit/verify)",
    )
    ts: float
    actor_id: str = Field(description="the caller's token id; empty when none was shown")
    actor_label: str = Field(description="the app identity the token was issued to")
    action: str = Field(description="kit.adopt, model.deploy, job.submit… (AUDITED_CALLS)")
    target: str
    outcome: str = Field(description="ok, or the status and error code of a refusal")
    detail: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(pattern="^[0-9a-f]{64}$")
    hash: str = Field(pattern="^[0-9a-f]{64}$")

    def expected_hash(self) -> str:
        return audit_hash(
            self.prev_hash,
            self.seq,
            self.ts,
            self.actor_id,
            self.actor_label,
            self.action,
            self.target,
            self.outcome,
            self.detail,
        )


def audit_hash(
    prev_hash: str,
    seq: int,
    ts: float,
    actor_id: str,
    actor_label: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any],
) -> str:
    """sha256 over the previous hash and the entry's canonical JSON: changing any field, or
    removing or reordering entries, breaks every hash after it."""
    canonical = json.dumps(
        {
            "seq": seq,
            "ts": ts,
            "actor_id": actor_id,
            "actor_label": actor_label,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}|{canonical}".encode()).hexdigest()


def verify_chain(entries: list[AuditEntry], prev_hash: str | None, prev_seq: int = 0) -> list[str]:
    """Every break in `entries` (oldest first), continuing from `prev_hash` at `prev_seq`.

    `prev_hash` None trusts the first entry's link (a log read from its middle); an empty list
    back means the chain is whole.
    """
    problems: list[str] = []
    for entry in entries:
        if entry.seq != prev_seq + 1:
            problems.append(f"entry {entry.seq} follows {prev_seq}: entries are missing")
        if prev_hash is not None and entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq} does not link to the entry before it")
        if entry.hash != entry.expected_hash():
            problems.append(f"entry {entry.seq} was altered after it was written")
        prev_hash, prev_seq = entry.hash, entry.seq
    return problems


class ChainCheck:
    """Checks a log read oldest first from its first kept entry, in as many parts as it comes.

    A kit drops its oldest segments to bound its log. What is kept still verifies: its first
    entry starts a segment and links to the hash of the last entry dropped, and the newest
    segment entry (inside the chain, so covered by every hash after it) names that first
    entry and that hash. A log cut anywhere else, or cut further than its segment entry says,
    is a break.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.kept_from = 0  # the first entry's seq; 1 when nothing was dropped
        self.last: AuditEntry | None = None
        self._first: AuditEntry | None = None
        self._says: dict[str, Any] | None = None  # the newest segment entry's detail

    def add(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        if self._first is None:
            self._first, self.kept_from = entries[0], entries[0].seq
            prev_hash, prev_seq = (
                (AUDIT_GENESIS, 0) if self.kept_from == 1 else (entries[0].prev_hash, self.kept_from - 1)
            )
            if self.kept_from > 1 and entries[0].action != AUDIT_SEGMENT:
                self.problems.append(
                    f"the log starts at entry {self.kept_from}, which does not "
                    "start a segment: entries are missing before it"
                )
        else:
            assert self.last is not None
            prev_hash, prev_seq = self.last.hash, self.last.seq
        self.problems += verify_chain(entries, prev_hash, prev_seq)
        self._says = next((e.detail for e in reversed(entries) if e.action == AUDIT_SEGMENT), self._says)
        self.last = entries[-1]

    def finish(self) -> list[str]:
        """Every problem found, once the whole kept log was added."""
        first, says = self._first, self._says
        if first is not None and (self.kept_from > 1 or says is not None):
            said = says.get("kept_from") if says else 1
            if said != self.kept_from or (says and says.get("dropped_hash") != first.prev_hash):
                self.problems.append(
                    f"the log starts at entry {self.kept_from}, but its last "
                    f"segment entry says it keeps entries from {said}"
                )
        return self.problems

    def describe(self) -> str:
        """Where the kept chain starts, in words; empty when nothing was dropped."""
        if self.kept_from <= 1:
            return ""
        return (
            f"kept from entry {self.kept_from} on (entries 1-{self.kept_from - 1} were "
            "rotated out to bound the log's size)"
        )


class AuditCheck(WireModel):
    """The answer of GET /v1/audit/verify: the kit's own check of its whole chain."""

    entries: int = Field(description="the seq of the newest entry")
    head_hash: str | None
    problems: list[str]
    kept_from: int = Field(
        1, description="the first entry kept; older segments were dropped to bound the log's size"
    )
    note: str = Field("", description="where the kept chain starts, in words")
