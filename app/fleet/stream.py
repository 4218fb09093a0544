"""Stream jobs from the laptop: start one on a kit, follow its live results, stop it.

A stream job is an ordinary job of kind `stream` (durable on the kit, re-queued after a
crash); what is special is its live view, Server-Sent Events read here over the kit's
pinned connection and turned into `LiveEvent`s for the CLI and the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.wire import STREAM_KEEP, JobInfo, JobRequest
from app.fleet.client import KitClient
from app.fleet.errors import AgentError, Error
from app.fleet.inventory import Kit
from app.fleet.jobspec import JobSpec
from app.fleet.service import Fleet

__all__ = [
    "LiveEvent",
    "StreamOptions",
    "async_follow",
    "async_snapshot",
    "async_start",
    "async_stop",
    "async_watch",
    "parse_events",
    "parse_keep",
    "stats_line",
]

EventKind = Literal["frame", "stats", "end"]
MAX_ATTEMPT_S = 7 * 86400.0  # the longest attempt a kit accepts; a crash or timeout re-queues it
RESTARTS = 20  # crashes of the agent (or a camera dropping out) a stream survives


@dataclass(frozen=True)
class LiveEvent:
    kind: EventKind
    data: dict[str, Any]


@dataclass(frozen=True)
class StreamOptions:
    """What a technician gives `stream start`; None leaves the kit's default."""

    model: str
    source: str
    version: str | None = None
    fps: float | None = None
    keep: Sequence[str] = STREAM_KEEP
    interval_s: float | None = None
    max_snapshots: int | None = None
    realtime: bool = True
    loop: bool = False
    threads: int | None = None
    label: str = ""

    def request(self) -> JobRequest:
        """The checked job request (JobInputError lists every problem)."""
        params = {
            "model": self.model,
            "source": self.source,
            "version": self.version,
            "fps": self.fps,
            "keep": list(self.keep),
            "interval_s": self.interval_s,
            "max_snapshots": self.max_snapshots,
            "realtime": self.realtime,
            "loop": self.loop,
        }
        spec = JobSpec(
            kind="stream",
            params={k: v for k, v in params.items() if v is not None},
            threads=self.threads,
            timeout_s=MAX_ATTEMPT_S,
            max_retries=RESTARTS,
            label=self.label or f"stream {self.source}",
        )
        # a camera that dropped out is tried again soon, not after the default half minute
        return spec.request().model_copy(update={"retry_backoff_s": 5.0})


def parse_keep(text: str) -> list[str]:
    """`detections,counts` → the list, refusing names the kit would not know."""
    keep = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(keep) - set(STREAM_KEEP))
    if unknown:
        raise Error(f"--keep takes {', '.join(STREAM_KEEP)}; not {', '.join(unknown)}")
    return keep


async def async_start(fleet: Fleet, kit: Kit, options: StreamOptions) -> JobInfo:
    request = options.request()
    job, _ = await fleet.async_call(kit, lambda c: c.submit_job(request))
    return job


async def async_stop(fleet: Fleet, kit: Kit, job_id: str) -> JobInfo:
    return await fleet.async_call(kit, lambda c: c.cancel_job(job_id))


async def async_snapshot(fleet: Fleet, kit: Kit, job_id: str) -> bytes:
    return await fleet.async_call(kit, lambda c: c.snapshot(job_id))


async def async_watch(fleet: Fleet, kit: Kit, job_id: str) -> AsyncIterator[LiveEvent]:
    """The job's live events until it ends (the last event is `end`), or the kit goes away."""
    async with fleet.client(kit) as client:
        async for event in parse_events(client.live_lines(job_id)):
            yield event


async def async_follow(
    fleet: Fleet,
    kit: Kit,
    job_id: str,
    on_event: Callable[[LiveEvent], None],
    on_frame: Callable[[bytes], None],
    frame_every_s: float = 0.25,
) -> LiveEvent | None:
    """Live events to `on_event`, and the latest annotated frame to `on_frame` when it changes
    (fetched one at a time, so a slow link shows fewer frames instead of queueing them), until
    the job ends. Returns the `end` event, or None if the kit closed the view first."""
    async with fleet.client(kit) as client:
        puller = asyncio.create_task(_pull_frames(client, job_id, on_frame, frame_every_s))
        try:
            async for event in parse_events(client.live_lines(job_id)):
                on_event(event)
                if event.kind == "end":
                    puller.cancel()
                    await _frame_once(client, job_id, on_frame, b"")  # the last frame it processed
                    return event
        finally:
            puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await puller
    return None


async def _pull_frames(
    client: KitClient, job_id: str, on_frame: Callable[[bytes], None], every_s: float
) -> None:
    last = b""
    while True:
        last = await _frame_once(client, job_id, on_frame, last)
        await asyncio.sleep(every_s)


async def _frame_once(
    client: KitClient, job_id: str, on_frame: Callable[[bytes], None], last: bytes
) -> bytes:
    try:
        jpeg = await client.snapshot(job_id)
    except AgentError as exc:
        if exc.error != "no_frame_yet":
            raise
        return last
    if jpeg != last:
        on_frame(jpeg)
    return jpeg


async def parse_events(lines: AsyncIterator[str]) -> AsyncIterator[LiveEvent]:
    """Server-Sent Events (`event:` and `data:` lines, a blank line ends one; `:` lines are
    comments) as LiveEvents; events this app does not know are skipped."""
    name, data = "", []
    async for line in lines:
        if line.startswith(":"):
            continue
        if line:
            key, _, value = line.partition(":")
            if key == "event":
                name = value.strip()
            elif key == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if name in ("frame", "stats", "end") and data:
            yield LiveEvent(name, json.loads("\n".join(data)))  # type: ignore[arg-type]
        name, data = "", []


def stats_line(stats: dict[str, Any], now: float | None = None) -> str:
    """One line a technician reads at a glance: rates, drops, latency, counts this interval."""
    latency = stats.get("latency_ms") or {}
    counts = stats.get("counts") or {}
    stamp = time.strftime("%H:%M:%S", time.localtime(now or time.time()))
    tally = "  ".join(f"{label} {count}" for label, count in sorted(counts.items())) or "nothing seen"
    return (
        f"{stamp} {stats.get('state', '?'):<9} {_num(stats.get('processed_fps'))} fps "
        f"(source {_num(stats.get('input_fps'))})  dropped {stats.get('dropped', 0)}  "
        f"latency p50 {_num(latency.get('p50'))} ms p99 {_num(latency.get('p99'))} ms  | {tally}"
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
