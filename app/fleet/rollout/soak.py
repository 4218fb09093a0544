"""Is the new version good on this kit? Checked at the end of its soak, from the kit itself:
it answers and serves the new version, its jobs on the model and its infer requests on the
new version did not fail (infer_rate.py), a short on-kit benchmark is not slower than the
version it replaced, and (with an eval set) top-1 accuracy did not drop by more than the
threshold.

The benchmark and evaluate jobs carry idempotency keys made from the rollout, kit, check and
version: a laptop that died mid-check finds the same jobs on resume instead of queuing more.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from agent.wire import FINISHED_STATES, JobInfo, JobRequest
from app.fleet.client import KitClient
from app.fleet.datasets import LocalDataset, async_ensure
from app.fleet.rollout.infer_rate import INFER_AT_ACTIVATION, async_infer_counts, window
from app.fleet.rollout.kit_steps import async_serving
from app.fleet.rollout.record import KitState, Rollout
from app.fleet.service import Fleet

__all__ = ["Verdict", "async_check"]

BENCH_RUNS = 30
JOB_WAIT_S = 900.0
POLL_S = 0.3


@dataclass
class Verdict:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)  # the figures in words, for a passing kit's line

    def fail(self, reason: str) -> None:
        self.ok = False
        self.reasons.append(reason)


async def async_check(fleet: Fleet, rollout: Rollout, kit: KitState, dataset: LocalDataset | None) -> Verdict:
    """Every check on one kit; KitUnreachable passes through (the kit waits, it did not fail)."""
    verdict = Verdict(True)
    info = await async_serving(fleet, kit, rollout.model)
    serving = info.active_version if info else None
    if serving != kit.version:
        verdict.fail(f"serves {rollout.model} {serving}, not {kit.version} (changed outside the rollout)")
        return verdict
    await _latency(fleet, rollout, kit, verdict)
    if dataset is not None:
        await _accuracy(fleet, rollout, kit, dataset, verdict)
    await _error_rate(fleet, rollout, kit, verdict)
    return verdict


async def _latency(fleet: Fleet, rollout: Rollout, kit: KitState, verdict: Verdict) -> None:
    limits = rollout.thresholds
    new = await _benchmark(fleet, rollout, kit, kit.version, verdict)
    if new is None or kit.previous_version is None:
        return
    old = await _benchmark(fleet, rollout, kit, kit.previous_version, verdict)
    if old is None:
        return
    verdict.figures["latency_ratio"] = round(new / old, 3) if old > 0 else None
    verdict.said.append(f"p50 {new:.1f} ms vs {old:.1f} ms for {kit.previous_version}")
    if new > old * limits.max_latency_ratio + limits.latency_slack_ms:
        verdict.fail(
            f"latency p50 {new:.2f} ms vs {old:.2f} ms for {kit.previous_version} "
            f"(allowed {limits.max_latency_ratio:g}x + {limits.latency_slack_ms:g} ms)"
        )


async def _benchmark(
    fleet: Fleet, rollout: Rollout, kit: KitState, version: str, verdict: Verdict
) -> float | None:
    params = {"model": rollout.model, "version": version, "runs": BENCH_RUNS, "warmup": 3}
    job = await _run_job(fleet, rollout, kit, "benchmark", params)
    rows = (job.result or {}).get("rows") or [{}]
    p50 = rows[0].get("p50_ms")
    if job.state != "done" or not isinstance(p50, (int, float)):
        verdict.fail(f"benchmark of {version} {job.state}: {job.error or 'no latency reported'}")
        return None
    verdict.figures[f"p50_ms {version}"] = p50
    return float(p50)


async def _accuracy(
    fleet: Fleet, rollout: Rollout, kit: KitState, dataset: LocalDataset, verdict: Verdict
) -> None:
    target = fleet.inventory.get(kit.device_id)
    await fleet.async_call(target, lambda c: async_ensure(c, dataset))
    new = await _evaluate(fleet, rollout, kit, kit.version, dataset, verdict)
    if new is None or kit.previous_version is None:
        return
    old = await _evaluate(fleet, rollout, kit, kit.previous_version, dataset, verdict)
    if old is None:
        return
    loss = (old - new) * 100
    verdict.said.append(f"top-1 {new:.1%} vs {old:.1%}")
    if loss > rollout.thresholds.max_accuracy_loss:
        verdict.fail(
            f"top-1 accuracy {new:.1%} vs {old:.1%} for {kit.previous_version} on {dataset.folder.name} "
            f"(a {loss:.1f}-point loss; allowed {rollout.thresholds.max_accuracy_loss:g})"
        )


async def _evaluate(
    fleet: Fleet, rollout: Rollout, kit: KitState, version: str, dataset: LocalDataset, verdict: Verdict
) -> float | None:
    params = {"model": rollout.model, "version": version, "dataset": dataset.name}
    job = await _run_job(fleet, rollout, kit, "evaluate", params)
    top1 = (job.result or {}).get("top1_accuracy")
    if job.state != "done" or not isinstance(top1, (int, float)):
        verdict.fail(f"evaluation of {version} {job.state}: {job.error or 'no accuracy reported'}")
        return None
    verdict.figures[f"top1 {version}"] = top1
    return float(top1)


async def _error_rate(fleet: Fleet, rollout: Rollout, kit: KitState, verdict: Verdict) -> None:
    await _job_errors(fleet, rollout, kit, verdict)
    await _infer_errors(fleet, rollout, kit, verdict)


async def _infer_errors(fleet: Fleet, rollout: Rollout, kit: KitState, verdict: Verdict) -> None:
    """The share of the kit's infer requests on the new version, since activation, that failed
    through the kit's fault (infer_rate.py says why refusals do not count)."""
    counts = window(kit.checks.get(INFER_AT_ACTIVATION), await async_infer_counts(fleet, kit, rollout.model))
    verdict.figures["infer"] = counts.said()
    verdict.said.append(counts.said())
    if counts.rate > rollout.thresholds.max_error_rate:
        verdict.fail(
            f"{counts.said()} on {rollout.model} {kit.version} since activation "
            f"({counts.rate:.0%}; allowed {rollout.thresholds.max_error_rate:.0%})"
        )


async def _job_errors(fleet: Fleet, rollout: Rollout, kit: KitState, verdict: Verdict) -> None:
    """The share of the model's jobs on the kit, finished since activation, that failed."""
    since = kit.activated_at or 0.0
    jobs = await fleet.async_call(
        fleet.inventory.get(kit.device_id), lambda c: c.jobs(states=list(FINISHED_STATES), limit=500)
    )
    mine = [
        j for j in jobs if j.request.params.get("model") == rollout.model and (j.finished_at or 0) >= since
    ]
    failed = sum(1 for j in mine if j.state in ("failed", "interrupted"))
    rate = failed / len(mine) if mine else 0.0
    verdict.figures["jobs"] = f"{failed} of {len(mine)} failed"
    verdict.said.append(f"{failed} of {len(mine)} jobs failed")
    if rate > rollout.thresholds.max_error_rate:
        verdict.fail(
            f"{failed} of {len(mine)} jobs on {rollout.model} failed since activation "
            f"(allowed {rollout.thresholds.max_error_rate:.0%})"
        )


async def _run_job(
    fleet: Fleet, rollout: Rollout, kit: KitState, kind: str, params: dict[str, Any]
) -> JobInfo:
    key = f"{rollout.rollout_id}-{kit.device_id[:16]}-{kind}-{params['version']}"
    request = JobRequest.model_validate(
        {"kind": kind, "params": params, "idempotency_key": key, "label": f"rollout {rollout.rollout_id}"}
    )
    target = fleet.inventory.get(kit.device_id)

    async def run(client: KitClient) -> JobInfo:
        job, _ = await client.submit_job(request)
        deadline = time.monotonic() + JOB_WAIT_S
        while job.state not in FINISHED_STATES and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            job = await client.job(job.job_id)
        return job

    return await fleet.async_call(target, run)
