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
from pathlib import Path
from typing import Any, Literal

from agent.wire import STREAM_KEEP, JobInfo, JobRequest
from app.fleet.client import KitClient
from app.fleet.datasets import LocalDataset, async_ensure, scan, scan_file
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
    "async_upload_source",
    "async_watch",
    "local_source",
    "parse_events",
    "parse_keep",
    "stats_line",
    "summary_lines",
    "tally",
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
    live: bool = False  # a folder as a camera: drop what the model cannot keep up with
    dataset: str | None = None  # an uploaded dataset `source` lies in
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
            "live": self.live or None,  # left out unless set: older kits do not know it
            "dataset": self.dataset,
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
    """Stop the job; the kit lets a stream write its summary first, which the answer carries."""
    return await fleet.async_call(kit, lambda c: c.cancel_job(job_id))


def local_source(path: Path) -> LocalDataset:
    """A video file, or a folder of images, on this computer as a dataset to send to a kit."""
    return scan(path) if path.is_dir() else scan_file(path)


async def async_upload_source(
    fleet: Fleet, kit: Kit, dataset: LocalDataset, sent: Callable[[int], None] | None = None
) -> str:
    """Send the dataset unless the kit has it from an earlier send; its name on the kit."""
    info = await fleet.async_call(kit, lambda c: async_ensure(c, dataset, sent))
    return info.name


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
    """One line a technician reads at a glance: rates, drops, latency, and what was seen so far
    (counted across a looped video's passes, which are shown)."""
    latency = stats.get("latency_ms") or {}
    stamp = time.strftime("%H:%M:%S", time.localtime(now or time.time()))
    loops = int(stats.get("loops") or 0)
    return (
        f"{stamp} {stats.get('state', '?'):<9} {_num(stats.get('processed_fps'))} fps "
        f"(source {_num(stats.get('input_fps'))}), {stats.get('processed', 0)} frames, "
        f"dropped {stats.get('dropped', 0)}, latency p50 {_num(latency.get('p50'))} ms "
        f"p99 {_num(latency.get('p99'))} ms"
        + (f", looped {loops}x" if loops else "")
        # totals, not this interval's counts: the numbers only grow, a new pass resets nothing
        + f" | seen: {tally(stats.get('totals') or stats.get('counts') or {})}"
    )


def tally(counts: dict[str, int]) -> str:
    """Counts per label as `circle x3, square x1`; a label that is not a plain word (a digit
    class, one with spaces) is quoted, so "0" x1 never reads as two numbers."""
    parts = [f"{_label(label)} x{count}" for label, count in sorted(counts.items(), key=_most_first)]
    return ", ".join(parts) or "nothing yet"


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _label(label: str) -> str:
    return label if label.replace("_", "a").replace("-", "a").isalpha() else json.dumps(label)


def summary_lines(result: dict[str, Any] | None) -> list[str]:
    """A stream job's summary for a person: frames, loops, rates, detections per label."""
    if not result:
        return ["no summary: the job ended before it processed a frame"]
    latency = result.get("latency_ms") or {}
    loops = int(result.get("loops") or 0)
    how = "stopped on request" if result.get("stopped") else "source ended"
    return [
        f"frames: {result.get('frames_in', 0)} read, {result.get('processed', 0)} processed, "
        f"{result.get('dropped', 0)} dropped" + (f", video looped {loops}x" if loops else "") + f" ({how})",
        f"rate: {_num(result.get('processed_fps'))} fps processed over {_num(result.get('seconds'))} s, "
        f"latency p50 {_num(latency.get('p50'))} ms, p99 {_num(latency.get('p99'))} ms",
        f"detections per label: {tally(result.get('totals') or {})}",
    ] + ([f"unreadable images skipped: {result['unreadable']}"] if result.get("unreadable") else [])


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
