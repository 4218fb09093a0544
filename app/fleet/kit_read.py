"""What one detailed poll reads of a kit: in one request (GET /v1/overview), or part by part
from an agent older than that route.

At 1,000 kits the first round's six requests a kit (health, samples, models, jobs, audit,
facts) cost the laptop most of its CPU in the HTTP exchanges themselves (issue 19); on a
high-latency link each is also a round trip. The parts are the same either way, and so are
their checks; samples and audit entries beyond the first page are read page by page as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.wire import AuditEntry, FactFamilies, Health, JobInfo, MetricSample, ModelInfo
from app.fleet.client import KitClient
from app.fleet.errors import AgentError
from app.fleet.history import MAX_PAGES, PAGE, async_pull_samples

__all__ = ["AUDIT_PAGE", "AUDIT_PAGES", "KitRead", "async_pull_audit", "async_read_kit"]

AUDIT_PAGE = 1000
AUDIT_PAGES = 5


@dataclass(frozen=True)
class KitRead:
    health: Health
    samples: list[MetricSample]
    models: list[ModelInfo]
    jobs: list[JobInfo]
    audit: list[AuditEntry] | None  # None: not asked, or refused (`audit_note` says why)
    audit_note: str
    facts: FactFamilies | None  # None: not asked


async def async_read_kit(
    client: KitClient,
    cursor: int | None,
    jobs_limit: int,
    audit_anchor: int | None,
    facts: bool,
    overview: bool = True,
) -> KitRead:
    """The kit's health, samples after `cursor`, models, newest jobs, the audit entries from
    `audit_anchor` (itself included, so its hash is checked again) and, when `facts`, its facts.

    `overview`: try the one-request route first. An agent without it answers 404 (AgentError
    with status 404, which the caller may remember to stop asking); anything else it raises."""
    if not overview:
        return await _async_read_parts(client, cursor, jobs_limit, audit_anchor, facts)
    audit_after = None if audit_anchor is None else max(audit_anchor - 1, 0)
    got = await client.overview(cursor, PAGE, jobs_limit, facts, audit_after, AUDIT_PAGE)
    samples = got.metrics.samples
    if len(samples) == PAGE and samples[-1].seq is not None:  # a kit back after a long absence
        samples = samples + await async_pull_samples(client, samples[-1].seq, MAX_PAGES - 1)
    entries, note = got.audit, got.audit_refused or ""
    if entries is not None and len(entries) == AUDIT_PAGE:
        more, note = await async_pull_audit(client, entries[-1].seq, AUDIT_PAGES - 1)
        entries = entries + (more or [])
    return KitRead(
        got.health, samples, got.models, got.jobs, entries, note, got.facts.families if got.facts else None
    )


async def _async_read_parts(
    client: KitClient, cursor: int | None, jobs_limit: int, audit_anchor: int | None, facts: bool
) -> KitRead:
    health = await client.health()
    samples = await async_pull_samples(client, cursor)
    models = await client.models()
    jobs = await client.jobs(limit=jobs_limit)
    entries, note = (
        (None, "") if audit_anchor is None else await async_pull_audit(client, max(audit_anchor - 1, 0))
    )
    families = (await client.facts()).families if facts else None
    return KitRead(health, samples, models, jobs, entries, note, families)


async def async_pull_audit(
    client: KitClient, after: int, pages: int = AUDIT_PAGES
) -> tuple[list[AuditEntry] | None, str]:
    """Entries after `after`, a few pages at most; None and why when the kit refuses them."""
    entries: list[AuditEntry] = []
    try:
        for _ in range(pages):
            page = await client.audit(since_seq=after, limit=AUDIT_PAGE)
            entries += page
            if len(page) < AUDIT_PAGE:
                break
            after = page[-1].seq
    except AgentError as exc:  # e.g. the token lost its admin scope: say so, keep polling
        return None, str(exc)
    return entries, ""
