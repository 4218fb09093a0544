"""Calls about the kit itself: health and identity, pairing, facts, metrics, its audit log, tokens."""

from __future__ import annotations

from typing import Any

from agent.wire import (
    OVERVIEW_PATH,
    AuditEntry,
    Facts,
    Health,
    Metrics,
    Overview,
    PairRequest,
    PairResponse,
    PreflightAnswer,
    PreflightRequest,
)
from agent.wire.preflight import ClockSetAnswer, ClockSetRequest
from app.fleet.client._transport import KitConnection
from app.fleet.errors import IdentityChanged


class KitCalls(KitConnection):
    """What the fleet view and the audit need of a kit."""

    async def health(self) -> Health:
        health = await self._get(Health, "/v1/health")
        if health.device_id != self.device_id:  # a pinned handshake makes this unreachable
            raise IdentityChanged(self.name, self.device_id, health.device_id)
        return health

    async def overview(
        self,
        since_seq: int | None,
        samples_limit: int,
        jobs_limit: int,
        facts: bool = False,
        audit_since: int | None = None,
        audit_limit: int = 1000,
    ) -> Overview:
        """Health, samples, models, jobs (and facts, audit entries when asked) in one request;
        an agent older than the route answers 404 (AgentError), and the caller asks part by part."""
        params: dict[str, Any] = {"samples_limit": samples_limit, "jobs_limit": jobs_limit}
        if since_seq is not None:
            params["since_seq"] = since_seq
        if facts:
            params["facts"] = "true"
        if audit_since is not None:
            params |= {"audit_since": audit_since, "audit_limit": audit_limit}
        got = await self._get(Overview, OVERVIEW_PATH, params=params)
        if got.health.device_id != self.device_id:  # a pinned handshake makes this unreachable
            raise IdentityChanged(self.name, self.device_id, got.health.device_id)
        metrics = got.metrics.model_copy(update={"samples": got.metrics.samples[:samples_limit]})
        return got.model_copy(  # no more than asked is kept, as the routes' own calls do
            update={
                "metrics": metrics,
                "jobs": got.jobs[:jobs_limit],
                "audit": None if got.audit is None else got.audit[:audit_limit],
            }
        )

    async def pair(self, request: PairRequest) -> PairResponse:
        return await self._call(PairResponse, "POST", "/v1/pair", json=request.model_dump())

    async def facts(self) -> Facts:
        return await self._get(Facts, "/v1/facts")

    async def metrics(self, since: float = 0.0, since_seq: int | None = None, limit: int = 1000) -> Metrics:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if since_seq is not None:
            params["since_seq"] = since_seq
        metrics = await self._get(Metrics, "/v1/metrics", params=params)
        return metrics.model_copy(update={"samples": metrics.samples[:limit]})  # no more than asked

    async def audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        entries = await self._list(AuditEntry, "/v1/audit", params={"since_seq": since_seq, "limit": limit})
        return entries[:limit]  # a kit sending more than asked does not get it kept

    async def preflight(self, request: PreflightRequest) -> PreflightAnswer:
        """The kit's checks; it re-runs each serving model's, so its answer may take a while."""
        return await self._call(
            PreflightAnswer, "POST", "/v1/preflight", json=request.model_dump(), timeout=self._long()
        )

    async def set_clock(self, request: ClockSetRequest) -> ClockSetAnswer:
        """Set the kit's clock (admin); the kit and, through the call hook, the app audit it."""
        return await self._call(ClockSetAnswer, "POST", "/v1/clock", json=request.model_dump())

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"/v1/tokens/{token_id}")
