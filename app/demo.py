"""`kitfleet demo`: three kits on loopback, found over mDNS, adopted and used end to end.

They get the bundled INT8 classifier (and the workstation the detector), read sample pictures,
then run a batch-infer job over the bundled evaluation images and a benchmark on their own, and
the workstation watches the bundled video with the detector as a stream job, followed live.

Everything stays on this machine: agents listen on 127.0.0.1 and mDNS runs only
on 127.0.0.1, so no traffic reaches the machine's real network. However the demo ends (done, an
error, Ctrl-C, SIGTERM or SIGHUP), it stops the agents it started; each agent's job workers
die with it (they ask the kernel for that, `agent/warm.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from agent.wire import CpuFacts, InferResult, Int8Advice, JobInfo, JobRequest, MemoryFacts
from app.fleet.datasets import scan
from app.fleet.deploy import async_deploy
from app.fleet.discovery import Announcement, async_discover
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.jobs import async_submit, async_watch
from app.fleet.localagent import LOOPBACK, LocalAgent, stop_all
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.stream import LiveEvent, StreamOptions, async_follow, async_start, stats_line
from app.fleet.summary import int8_support
from resources import datasets_dir, images_dir, models_dir, videos_dir

CLASSIFIER = "digits-cnn-int8.onnx"  # the bundled INT8 model every demo kit gets
DETECTOR = "shapes-yolo-fp32.onnx"  # the bundled detector, on the workstation only
VIDEO = "shapes.mp4"  # the bundled 6 s clip of moving shapes the detector knows
DEMO_KITS = (
    ("flyaway-kit-01", "Fly-away kit (rugged case)"),
    ("edge-ws-ampere", "Edge workstation"),
    ("deploy-srv-01", "Deployable server"),
)


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


async def _discover_and_adopt(fleet: Fleet, agents: list[LocalAgent]) -> None:
    names = {agent.name for agent in agents}
    started = time.monotonic()
    pending = set(names)

    def all_seen(announcement: Announcement) -> bool:
        pending.discard(announcement.name)
        return not pending

    found = await async_discover(fleet.settings.mdns_interfaces, 15.0, stop_when=all_seen)
    seen = {a.name: a.device_id for a in found if a.name in names}
    if set(seen) != names:
        raise SystemExit(f"[demo] mDNS found only {sorted(seen)}; expected {sorted(names)}")
    _say(f"discovered {len(seen)} kits over mDNS on {LOOPBACK} in {time.monotonic() - started:.2f} s")
    for agent in agents:
        code = agent.pair_code()  # what the technician reads off the kit's console or label
        kit = await fleet.async_adopt(seen[agent.name], code)
        _say(f"adopted {kit.name:<16} device {kit.device_id[:16]}… with code {code}")
    for kit in fleet.inventory.kits():
        result = await fleet.async_facts(kit)
        cpu, mem = result.families.cpu or CpuFacts(), result.families.memory or MemoryFacts()
        int8 = cpu.int8 or Int8Advice()
        _say(
            f"{kit.name:<16} {cpu.arch} {cpu.model}, "
            f"{cpu.logical_cores} cores, {(mem.total_bytes or 0) / 2**30:.1f} GiB, "
            f"INT8: {int8_support(int8)}"
        )


async def _deploy_and_infer(fleet: Fleet) -> None:
    """Push the bundled INT8 classifier to every kit and run a sample picture through it there."""
    kits = fleet.inventory.kits()
    outcomes = await async_deploy(fleet, models_dir() / CLASSIFIER, kits, activate=True)
    detector_kit = next(k for k in kits if k.name == DEMO_KITS[1][0])
    outcomes += await async_deploy(fleet, models_dir() / DETECTOR, [detector_kit], activate=True)
    for outcome in outcomes:
        if not outcome.ok:
            raise Error(f"deploy to {outcome.kit.name} failed: {outcome.message}")
        _say(f"deployed to {outcome.kit.name:<16} {outcome.message}")
        if outcome.advice:
            _say(f"  {outcome.advice}")
    digit = images_dir() / "digit-7.png"
    for kit in kits:
        result = await fleet.async_call(kit, lambda c: c.infer("digits-cnn", digit.read_bytes(), "image/png"))
        assert isinstance(result, InferResult)
        best = (result.classes or [])[0]
        _say(
            f"{kit.name:<16} {digit.name} -> {best.label!r} ({best.score:.3f}) by digits-cnn "
            f"{result.version} {result.sha256[:12]} in {result.latency_ms:.2f} ms"
        )
    shapes = images_dir() / "shapes-3.png"
    found = await fleet.async_call(
        detector_kit, lambda c: c.infer("shapes-yolo", shapes.read_bytes(), "image/png")
    )
    assert isinstance(found, InferResult)
    boxes = (
        ", ".join(
            f"{d.label} {d.score:.2f} at [{', '.join(f'{v:.0f}' for v in d.box)}]"
            for d in found.detections or []
        )
        or "nothing"
    )
    _say(f"{detector_kit.name:<16} {shapes.name} -> {boxes} by shapes-yolo {found.version}")


async def _run_jobs(fleet: Fleet) -> None:
    """Each kit labels the bundled evaluation images on its own and benchmarks its model."""
    kits = fleet.inventory.kits()
    images = await asyncio.to_thread(scan, datasets_dir() / "digits-eval")
    labelling = JobRequest(
        kind="batch-infer",
        label="label the eval digits",
        params={"model": "digits-cnn", "dataset": images.name, "top_k": 1},
    )
    timing = JobRequest(
        kind="benchmark",
        label="digits-cnn latency",
        priority=-1,
        params={"model": "digits-cnn", "batch_sizes": [1, 8], "runs": 40},
    )
    scoring = JobRequest(
        kind="evaluate",
        label="top-1 on the eval digits",
        params={"model": "digits-cnn", "dataset": images.name},
    )
    outcomes = await async_submit(fleet, kits, labelling, upload=images)
    outcomes += await async_submit(fleet, kits[:1], scoring)
    outcomes += await async_submit(fleet, kits, timing)
    queued: dict[str, list[str]] = {}
    for outcome in outcomes:
        if not outcome.ok or outcome.job is None:
            raise Error(f"{outcome.kit.name}: {outcome.message}")
        queued.setdefault(outcome.kit.device_id, []).append(outcome.job.job_id)
        _say(
            f"{outcome.kit.name:<16} queued {outcome.job.kind} job {outcome.job.job_id[:8]}… "
            f"({outcome.job.label})"
        )
    _say(f"uploaded {images.files} images as dataset {images.name} to each kit; waiting for the jobs")

    def moved(kit: Kit, job: JobInfo) -> None:
        if job.state not in ("queued", "running"):
            _say(f"{kit.name:<16} {job.kind} job {job.job_id[:8]}… {job.state}: {_outcome(job)}")

    finished = await asyncio.gather(*(async_watch(fleet, kit, queued[kit.device_id], moved) for kit in kits))
    failed = [job for jobs in finished for job in jobs if job.state != "done"]
    if failed:
        raise Error(f"{len(failed)} demo job(s) did not finish: {failed[0].error or failed[0].state}")


async def _stream(fleet: Fleet, agents: list[LocalAgent]) -> bytes:
    """The workstation runs the detector over the bundled video at its own pace, as it would a
    camera; the demo follows the live events and returns the last annotated frame."""
    agent = next(a for a in agents if a.name == DEMO_KITS[1][0])
    kit = next(k for k in fleet.inventory.kits() if k.name == agent.name)
    # As a technician copies a recording onto the kit: into its data root, where jobs may read.
    target = agent.data_dir / "datasets" / VIDEO
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(videos_dir() / VIDEO, target)
    job = await async_start(
        fleet, kit, StreamOptions(model="shapes-yolo", source=VIDEO, label="detector on the bundled video")
    )
    _say(f"{kit.name:<16} started stream job {job.job_id[:8]}… on {VIDEO} with shapes-yolo")
    frames: list[bytes] = []  # the annotated frames the live view fetched, newest last
    stats: list[str] = []  # the live figures, as `stream watch` prints them

    def on_event(event: LiveEvent) -> None:
        if event.kind == "stats" and event.data.get("processed"):
            stats.append(stats_line(event.data))

    end = await asyncio.wait_for(async_follow(fleet, kit, job.job_id, on_event, frames.append), 120)
    if end is None or end.data.get("state") != "done":
        raise Error(f"the stream job did not finish: {end.data if end else 'the live view closed'}")
    result = end.data.get("result") or {}
    latency = result.get("latency_ms") or {}
    totals = ", ".join(f"{label} {n}" for label, n in sorted((result.get("totals") or {}).items()))
    _say(
        f"{kit.name:<16} stream done: {result.get('processed')} of {result.get('frames_in')} frames "
        f"at {result.get('processed_fps')} fps, {result.get('dropped')} dropped, latency p50 "
        f"{latency.get('p50')} ms p99 {latency.get('p99')} ms; detections: {totals or 'none'}"
    )
    if stats:
        _say(f"{kit.name:<16} seen live while it ran: {stats[len(stats) // 2]}")
    return frames[-1] if frames else b""


def _outcome(job: JobInfo) -> str:
    result = job.result or {}
    if job.kind == "batch-infer":
        return (
            f"{result.get('images')} images at {result.get('images_per_s')} images/s, "
            f"{result.get('failed')} failed, by {result.get('version')} {str(result.get('sha256'))[:12]}"
        )
    if job.kind == "benchmark":
        rows = [r for r in result.get("rows", []) if "p50_ms" in r]
        return (
            "; ".join(
                f"batch {r['batch']}: p50 {r['p50_ms']:.2f} ms, {r['throughput_per_s']:.0f}/s" for r in rows
            )
            or "no measurements"
        )
    if job.kind == "evaluate":
        return f"top-1 {100 * float(result.get('top1_accuracy') or 0):.2f} % on {result.get('images')} images"
    return job.error or ""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stopped(KeyboardInterrupt):
    """A stop signal, as Ctrl-C: asyncio re-raises only KeyboardInterrupt and SystemExit from
    its callbacks and transports (any other exception there is logged and the loop goes on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []  # stop signals seen: by a stage's loop, the window, or a raise Python may swallow


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    raise _Stopped(signum)


T = TypeVar("T")


def _run_stage(stage: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, where a stop signal cancels the stage's task, as asyncio.Runner does for
    Ctrl-C, rather than raising wherever the event loop is: raised inside the loop's or a TLS
    transport's bookkeeping, the exception could leave the clean-up waiting forever."""
    done = asyncio.run(_cancelled_on_signals(stage))
    _unless_stopped()  # a signal after the stage's last step, or one swallowed between stages
    return done


async def _cancelled_on_signals(stage: Coroutine[Any, Any, T]) -> T:
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None

    def stop(signum: int) -> None:
        _received.append(signum)
        task.cancel()

    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await stage
    except asyncio.CancelledError:
        _unless_stopped()  # the stage's clean-up has run; now unwind the demo
        raise
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(signum, handler)


def _unless_stopped() -> None:
    """Raise _Stopped if a stop signal came: one a stage's task was cancelled for, or one whose
    raise Python swallowed (a signal handler runs wherever the main thread is, also in a weakref
    or __del__ callback, where exceptions are only printed)."""
    if _received:
        raise _Stopped(_received[0])


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP unwind the demo (its `finally` stops the agents)."""
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _closing_window_on_signals() -> Iterator[None]:
    """While the window is up a stop signal closes it, which ends its event loop: an exception
    raised in a Qt callback would only be printed. _unless_stopped then raises after the loop."""
    from app.gui.stopping import close_windows_if_looping

    def close_window(signum: int, frame: FrameType | None) -> None:
        if close_windows_if_looping():
            _received.append(signum)
        else:  # Python code, not a Qt callback: unwind from here
            _raise_stopped(signum, frame)

    previous = {signum: signal.signal(signum, close_window) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_demo(screenshot: Path | None = None, offscreen: bool = False) -> int:
    """Run the demo; a stop signal ends it with 128 + its number, after the agents stopped."""
    try:
        with _stopped_by_signals():
            code = _run_demo(screenshot, offscreen)
            _unless_stopped()
            return code
    except _Stopped as stop:
        print(f"[demo] stopped by {signal.Signals(stop.signum).name}", file=sys.stderr, flush=True)
        return 128 + stop.signum


def _run_demo(screenshot: Path | None, offscreen: bool) -> int:
    offscreen = offscreen or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        screenshot = screenshot or Path.cwd() / "kitfleet-demo.png"
    workdir = Path(tempfile.mkdtemp(prefix="kitfleet-demo-"))
    agents = [
        LocalAgent(workdir / name, name, kit_model=model, die_with_parent=True) for name, model in DEMO_KITS
    ]
    settings = AppSettings.resolve(home=workdir / "app", mdns_interfaces=[LOOPBACK])
    try:
        for agent in agents:
            agent.start()
            _say(f"started agent {agent.name} on https://{agent.address}")
        fleet = Fleet(settings)
        try:
            _run_stage(_discover_and_adopt(fleet, agents))
            _run_stage(_deploy_and_infer(fleet))
            _run_stage(_run_jobs(fleet))
            frame = _run_stage(_stream(fleet, agents))
        except Error as exc:
            print(f"[demo] {exc}", file=sys.stderr)
            return 1
        finally:
            fleet.close()
        if screenshot is not None and frame:
            live = screenshot.with_name(f"{screenshot.stem}-live.jpg")
            live.write_bytes(frame)
            _say(f"saved the stream's last annotated frame to {live}")
        return _show_window(settings, len(agents), screenshot, offscreen)
    finally:
        for signum in _STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        stop_all(agents)
        shutil.rmtree(workdir, ignore_errors=True)
        _say("stopped the demo agents")


def _show_window(settings: AppSettings, kits: int, screenshot: Path | None, offscreen: bool) -> int:
    try:
        from app.gui.main import run_demo_window
    except ImportError as exc:
        print(f"[demo] the desktop window cannot start: {exc}", file=sys.stderr)
        return 1
    _unless_stopped()
    _say("opening the window" + (" offscreen" if offscreen else ""))
    with _closing_window_on_signals():
        code = run_demo_window(
            settings, adopted=kits, screenshot=screenshot, offscreen=offscreen, show_jobs=True
        )
    _unless_stopped()
    if screenshot is not None and code == 0:
        jobs = screenshot.with_name(f"{screenshot.stem}-jobs{screenshot.suffix}")
        _say(f"saved screenshots of the window to {screenshot} and {jobs} (Jobs tab)")
    return code
