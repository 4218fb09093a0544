"""Fleet operations: poll every kit at once, keep what it says, and judge it.

One poll per kit is one pinned connection; a detailed poll is one request (GET /v1/overview:
health, new metric samples, models, recent jobs, new audit entries, facts when missing), part
by part from an agent older than that route (`kit_read.py`), and the rounds between detailed
ones read new metric samples only. Kits are polled concurrently, at most
`poll_concurrency` at a time; everything learnt is written in one transaction per round,
so a poll of 200 kits costs the inventory one commit, not hundreds. A kit that does not
answer is shown from what was stored, with the age of it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agent.wire import AuditEntry, FactFamilies, JobInfo, MetricSample, ModelInfo
from app.fleet.alerts import Alert, KitFigures, Thresholds, evaluate
from app.fleet.audit import ChainStatus
from app.fleet.client import KitClient
from app.fleet.errors import AgentError, BadAnswer, IdentityChanged, KitUnreachable
from app.fleet.history import MetricsHistory, async_pull_samples
from app.fleet.inventory import Kit
from app.fleet.kit_read import AUDIT_PAGE, KitRead, async_read_kit
from app.fleet.service import FactsResult, Fleet, Status
from app.fleet.snapshot import JOBS_KEPT, KitSnapshot, Snapshots, Tags

__all__ = ["FleetOps", "KitView", "Poll"]


@dataclass(frozen=True)
class Poll:
    """What one kit said in one round (or why it said nothing)."""

    kit: Kit
    status: Status
    detail: str = ""
    snapshot: KitSnapshot | None = None
    samples: list[MetricSample] = field(default_factory=list)
    audit: list[AuditEntry] | None = None  # None: not read this round
    audit_note: str = ""
    facts: FactFamilies | None = None  # read when the inventory has none for the kit yet
    agent_version: str | None = None  # the kit's agent version, when it changed


@dataclass(frozen=True)
class KitView:
    """One kit as every view shows it: live, or last-known with the age of what is shown."""

    kit: Kit
    status: str  # online | offline | identity_changed | checking
    detail: str
    snapshot: KitSnapshot | None
    chain: ChainStatus
    tags: list[str]
    alerts: list[Alert]

    @property
    def live(self) -> bool:
        return self.status == "online"

    @property
    def sample(self) -> MetricSample | None:
        return self.snapshot.sample if self.snapshot else None

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the kit last told us what is shown; None when it never did."""
        return self.snapshot.age(now) if self.snapshot else None


class FleetOps:
    def __init__(
        self,
        fleet: Fleet,
        thresholds: Thresholds | None = None,
        keep_connections: bool = False,
        detail_every: int = 1,
    ) -> None:
        """`keep_connections`: reuse each kit's TLS connection from poll to poll (the window
        polls every few seconds; a handshake per kit per poll was most of a round's CPU).
        Whoever keeps them closes them with `aclose`. `detail_every`: read models, jobs and
        the audit log every this many rounds (health and metrics: every round)."""
        self.fleet = fleet
        self.detail_every = max(1, detail_every)
        self._round = 0
        self._keep = keep_connections
        self._clients: dict[str, tuple[tuple[str, int, str], KitClient]] = {}
        inventory = fleet.inventory
        self.history = MetricsHistory(inventory)
        self.snapshots = Snapshots(inventory)
        self.tags = Tags(inventory)
        self.audit = fleet.audit
        self.thresholds = thresholds or Thresholds.load(fleet.settings.home)
        self._status: dict[str, tuple[str, str]] = {}  # device ID -> (status, detail) last round
        self._audit_notes: dict[str, str] = {}  # device ID -> why its log was not read
        self._have_facts: set[str] = set()  # kits whose facts the inventory holds
        self._unreachable: dict[str, str] = {}  # device ID -> why, until the round is stored
        self._cursors: dict[str, int] = {}  # device ID -> newest sample sequence number stored
        self._closing: set[asyncio.Future[None]] = set()
        self._no_overview: dict[str, str | None] = {}  # device ID -> agent version without GET /v1/overview

    # polling ----------------------------------------------------------------------

    async def async_poll(self, kits: list[Kit] | None = None, audit: bool = True) -> list[Poll]:
        """Poll kits (every adopted one by default) concurrently and store what they said."""
        detailed = kits is not None or self._round % self.detail_every == 0  # asked for: in full
        if kits is None:
            self._round += 1
        kits = list(self.fleet.inventory.kits() if kits is None else kits)
        limit = asyncio.Semaphore(self.fleet.settings.poll_concurrency)
        known = self.snapshots.all()

        async def one(kit: Kit) -> Poll:
            async with limit:
                return await self._async_poll_kit(kit, audit, None if detailed else known.get(kit.device_id))

        polls = list(await asyncio.gather(*(one(k) for k in kits)))
        self.store(polls)
        return polls

    async def _async_poll_kit(self, kit: Kit, audit: bool, known: KitSnapshot | None) -> Poll:
        """`known`: a snapshot to keep the models and jobs of, reading only new metrics (health,
        for the agent's version, comes with the details): one request a kit a round."""
        cursor = self._cursors.get(kit.device_id)
        cursor = self.history.cursor(kit.device_id) if cursor is None else cursor
        audit = audit and known is None
        anchor = self.audit.anchor(kit.device_id)[0] if audit and kit.scope == "admin" else None
        need_facts = (
            kit.device_id not in self._have_facts
            and not self.fleet.inventory.db.execute(
                "SELECT 1 FROM facts WHERE device_id = ?", (kit.device_id,)
            ).fetchone()
        )

        def taken(samples: list[MetricSample], models: list[ModelInfo], jobs: list[JobInfo]) -> KitSnapshot:
            latest = samples[-1] if samples else (known.sample if known else None)
            return KitSnapshot(
                device_id=kit.device_id,
                taken_at=time.time(),
                sample=latest or self.history.latest(kit.device_id),
                models=models,
                jobs=jobs,
            )

        async def fetch(client: KitClient) -> Poll:
            if known is not None:  # the steady round: new metrics only
                samples = await async_pull_samples(client, cursor)
                facts = (await client.facts()).families if need_facts else None
                return Poll(kit, "online", "", taken(samples, known.models, known.jobs), samples, facts=facts)
            read = await self._async_read(kit, client, cursor, anchor, need_facts)
            # written with the round's other writes, in `store`: a commit each is an fsync each
            version = read.health.version if read.health.version != kit.agent_version else None
            said = taken(read.samples, read.models, read.jobs)
            return Poll(
                kit, "online", "", said, read.samples, read.audit, read.audit_note, read.facts, version
            )

        try:  # when each kit was seen is written with the round's other writes, in `store`
            return await self.fleet.async_call(kit, fetch, self._kept(kit), record=False)
        except IdentityChanged as exc:
            await self._drop(kit.device_id)
            return Poll(kit, "identity_changed", str(exc))
        except (KitUnreachable, BadAnswer) as exc:  # one broken or rogue kit never stops the round
            await self._drop(kit.device_id)
            if isinstance(exc, KitUnreachable):
                self._unreachable[kit.device_id] = str(exc)
            return Poll(kit, "offline", str(exc))

    async def _async_read(
        self, kit: Kit, client: KitClient, cursor: int | None, anchor: int | None, facts: bool
    ) -> KitRead:
        """The kit in one request, or part by part from an agent without GET /v1/overview
        (remembered for the agent version that answered 404, so it is asked once)."""
        older = kit.device_id in self._no_overview and self._no_overview[kit.device_id] == kit.agent_version
        try:
            return await async_read_kit(client, cursor, JOBS_KEPT, anchor, facts, overview=not older)
        except AgentError as exc:
            if older or exc.status != 404:
                raise
            self._no_overview[kit.device_id] = kit.agent_version
            return await async_read_kit(client, cursor, JOBS_KEPT, anchor, facts, overview=False)

    async def async_facts(self, kit: Kit) -> FactsResult:
        """The kit's facts (`Fleet.async_facts`) over its kept connection when there is one:
        the window reads every kit's facts at start, a thousand handshakes otherwise."""
        return await self.fleet.async_facts(kit, self._kept(kit))

    def _kept(self, kit: Kit) -> KitClient | None:
        """The kit's open client when connections are kept, made anew if the kit moved."""
        if not self._keep or kit.state == "identity_changed":
            return None
        where = (kit.host, kit.port, kit.token)
        kept = self._clients.get(kit.device_id)
        if kept is not None and kept[0] == where:
            return kept[1]
        if kept is not None:
            self._closing.add(asyncio.ensure_future(kept[1].aclose()))
        client = self.fleet.client(kit)
        self._clients[kit.device_id] = (where, client)
        return client

    async def _drop(self, device_id: str) -> None:
        kept = self._clients.pop(device_id, None)
        if kept is not None:
            await kept[1].aclose()

    async def aclose(self) -> None:
        """Close the connections kept for polling."""
        clients, self._clients = [c for _, c in self._clients.values()], {}
        await asyncio.gather(*(c.aclose() for c in clients), *self._closing, return_exceptions=True)

    def store(self, polls: list[Poll]) -> None:
        """Write one round: a few transactions (when kits were seen, history, snapshots, facts,
        audit copies), however many kits were polled."""
        answered = [p for p in polls if p.snapshot is not None]
        self.fleet.inventory.record_seen(
            {p.kit.device_id: p.snapshot.taken_at for p in answered if p.snapshot is not None},
            {
                p.kit.device_id: self._unreachable.pop(p.kit.device_id)
                for p in polls
                if p.kit.device_id in self._unreachable
            },
            {p.kit.device_id: p.agent_version for p in answered if p.agent_version is not None},
        )
        self.history.merge_many({p.kit.device_id: p.samples for p in answered})
        for p in answered:  # where the next pull starts, without asking the inventory each round
            seqs = [s.seq for s in p.samples if s.seq is not None]
            if seqs:
                self._cursors[p.kit.device_id] = max(*seqs, self._cursors.get(p.kit.device_id, -1))
        self.snapshots.save_many(p.snapshot for p in answered if p.snapshot is not None)
        self.fleet.inventory.save_facts_many({p.kit.device_id: p.facts for p in polls if p.facts is not None})
        self.audit.merge_pulled_many({p.kit.device_id: p.audit for p in polls if p.audit is not None})
        for poll in polls:
            self._status[poll.kit.device_id] = (poll.status, poll.detail)
            if poll.status == "online":
                self._have_facts.add(poll.kit.device_id)
            if poll.audit_note:
                self._audit_notes[poll.kit.device_id] = poll.audit_note

    async def async_verify_audit(self, kit: Kit) -> ChainStatus:
        """Read the kit's whole log and check it, and against every entry pulled before."""

        async def pull_all(client: KitClient) -> list[AuditEntry]:
            entries: list[AuditEntry] = []
            while page := await client.audit(since_seq=entries[-1].seq if entries else 0, limit=AUDIT_PAGE):
                entries += page
                if len(page) < AUDIT_PAGE:
                    break
            return entries

        held_before = self.audit.anchor(kit.device_id)[0]
        entries = await self.fleet.async_call(kit, pull_all)
        return self.audit.check_whole(kit.device_id, entries, held_before)

    # reading ----------------------------------------------------------------------

    def views(self, now: float | None = None) -> list[KitView]:
        """Every adopted kit as last polled (or last known, before any poll this session)."""
        snapshots, tags, chains = self.snapshots.all(), self.tags.all(), self.audit.chain_statuses()
        return [
            self._view(kit, snapshots.get(kit.device_id), tags.get(kit.device_id, []), now, chains)
            for kit in self.fleet.inventory.kits()
        ]

    def view(self, device_id: str, now: float | None = None) -> KitView:
        kit = self.fleet.inventory.get(device_id)
        return self._view(kit, self.snapshots.get(device_id), self.tags.of(device_id), now)

    def views_of(self, polls: list[Poll], now: float | None = None) -> list[KitView]:
        """The views of the kits just polled, from what is in memory (no re-reading)."""
        snapshots, tags, chains = self.snapshots.all(), self.tags.all(), self.audit.chain_statuses()
        return [
            self._view(
                p.kit,
                p.snapshot or snapshots.get(p.kit.device_id),
                tags.get(p.kit.device_id, []),
                now,
                chains,
            )
            for p in polls
        ]

    def _view(
        self,
        kit: Kit,
        snapshot: KitSnapshot | None,
        tags: list[str],
        now: float | None,
        chains: dict[str, ChainStatus] | None = None,
    ) -> KitView:
        """`chains`: every kit's audit chain status, read once for many views."""
        status, detail = self._status.get(kit.device_id, ("checking", ""))
        if kit.state == "identity_changed":
            status = "identity_changed"
        chain = (
            self.audit.chain_status(kit.device_id)
            if chains is None
            else chains.get(kit.device_id) or ChainStatus(kit.device_id, 0)
        )
        note = self._audit_notes.get(kit.device_id) or (
            ""
            if kit.scope == "admin"
            else f"not readable: the app's token has the {kit.scope} scope, the audit log needs admin"
        )
        if note:
            chain = replace(chain, note=note)
        figures = self.figures(kit, status, snapshot, chain, now)
        return KitView(kit, status, detail, snapshot, chain, tags, evaluate(figures, self.thresholds, now))

    def figures(
        self,
        kit: Kit,
        status: str,
        snapshot: KitSnapshot | None,
        chain: ChainStatus,
        now: float | None = None,
    ) -> KitFigures:
        now = time.time() if now is None else now
        latest = snapshot.sample if snapshot else None
        coolest, earlier = (
            self.history.window(kit.device_id, latest.ts, self.thresholds.sustained_s)
            if latest
            else (None, None)
        )
        window = now - self.thresholds.job_failures_window_h * 3600
        failed = [_job_name(j) for j in snapshot.failures_since(window)] if snapshot else []
        return KitFigures(
            kit.device_id,
            kit.name,
            status,
            kit.last_seen_at,
            latest,
            coolest,
            earlier,
            failed,
            chain.problems,
        )


def _job_name(job: JobInfo) -> str:
    return f"{job.kind} {job.label or job.job_id[:8]}"


def model_rows(models: list[ModelInfo]) -> list[dict[str, Any]]:
    """Every installed version as a flat row, the serving ones first."""
    rows = [
        {
            "model": m.name,
            "task": m.task,
            "version": v.version,
            "active": v.active,
            "previous": m.previous_version == v.version,
            "precision": v.precision,
            "sha256": v.sha256,
            "size_bytes": v.size_bytes,
            "installed_at": v.installed_at,
        }
        for m in models
        for v in m.versions
    ]
    return sorted(rows, key=lambda r: (r["model"], not r["active"], r["version"]))
