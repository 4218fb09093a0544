"""The agent API client over TLS pinned to the kit's certificate: plain GETs by `_gets`
(h11 over a kept connection), everything else by httpx, imported on first use (`_httpx`).

`_transport` is the connection (pinned TLS, audited calls, failures sorted by cause) and
`_answers` how an answer is read (bounded, refusals clipped); the calls are grouped by what they
are about: `_kit` (identity, facts, metrics, audit), `_models`, `_jobs` (jobs, schedules, streams),
`_field` (images labelled on the kit, the unsure buffer), `_signers` (bundle-signing keys).
"""

from __future__ import annotations

from app.fleet.client._field import FieldCalls
from app.fleet.client._jobs import JobCalls
from app.fleet.client._kit import KitCalls
from app.fleet.client._models import ModelCalls, RawOutputs
from app.fleet.client._signers import SignerCalls
from app.fleet.client._transport import Call, CallHook

__all__ = ["Call", "CallHook", "KitClient", "RawOutputs"]


class KitClient(KitCalls, ModelCalls, JobCalls, FieldCalls, SignerCalls):
    """One kit's API. The bearer token is only ever sent over the pinned connection."""
