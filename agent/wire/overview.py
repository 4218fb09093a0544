"""A kit's whole state in one answer: what a fleet view's detailed poll reads of each kit.

Health, new metric samples, models and jobs (and, when asked, facts and new audit entries) came
as six requests a kit; at 1,000 kits the first round spent most of the laptop's CPU on the
requests themselves (issue 19), and on a high-latency link each costs a round trip. Every part is
the answer its own route gives, so an app reads it with the same models and the same checks.
"""

from __future__ import annotations

from pydantic import Field

from agent.wire.audit import AuditEntry
from agent.wire.base import WireModel
from agent.wire.common import Health
from agent.wire.facts import Facts, Metrics
from agent.wire.jobs import JobInfo
from agent.wire.models import ModelInfo

__all__ = ["OVERVIEW_PATH", "Overview"]

OVERVIEW_PATH = "/v1/overview"


class Overview(WireModel):
    health: Health
    metrics: Metrics = Field(description="as GET /v1/metrics?since_seq=&limit=samples_limit answers")
    models: list[ModelInfo] = Field(description="as GET /v1/models answers")
    jobs: list[JobInfo] = Field(description="as GET /v1/jobs?limit=jobs_limit answers, newest first")
    facts: Facts | None = Field(
        default=None, description="as GET /v1/facts answers, when asked with facts=true"
    )
    audit: list[AuditEntry] | None = Field(
        default=None,
        description="as GET /v1/audit?since_seq=audit_since&limit=audit_limit answers, when asked with "
        "audit_since and the token may read the log (admin); otherwise null and `audit_refused` says why",
    )
    audit_refused: str | None = Field(
        default=None, description="why the audit entries asked for are not here (the token's scope)"
    )
