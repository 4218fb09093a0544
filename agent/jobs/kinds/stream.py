"""`stream`: a deployed model on every frame it can keep up with, until cancelled or the source ends.

A live source (camera, URL) or a watched folder is decoded on its own thread
(`_frames.Reader`) into a one-frame slot; a video file is decoded on this loop's thread as it
asks for frames. This loop takes the newest frame, runs the model and records the answer;
the publisher draws and writes the live view. Latency is measured from the decoded frame
being ready to its answer.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from agent.jobs.credentials import SourceSecrets
from agent.jobs.errors import PermanentFailure
from agent.jobs.kinds._frames import Frame, Reader
from agent.jobs.kinds._keep import COUNTS_HEADER, Counts, Rotating, Snapshots
from agent.jobs.kinds._meter import Latencies, Rate
from agent.jobs.kinds._model import load, model_fields
from agent.jobs.kinds._publish import Publisher
from agent.jobs.kinds._unsure import Keeper
from agent.jobs.live import SNAPSHOTS
from agent.jobs.report import Reporter
from agent.jobs.urls import mask
from agent.models.infer import run_batch
from agent.wire import InferResult, Manifest

__all__ = ["mask", "run", "source_secret"]

TOP_K = 3
FLUSH_EVERY_S = 1.0
LOG_EVERY_S = 60.0
STOP_SIGNAL = signal.SIGUSR1  # what the agent sends a stream it stops (process.WorkerProcess)


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    manifest, session = load(spec, report)
    job = StreamJob(spec, report, manifest, session)
    # the agent's stop (a cancel): end as the source ending would, summary and all
    signal.signal(STOP_SIGNAL, job.stop_requested)
    return job.run()


def source_secret(spec: dict[str, Any]) -> str | None:
    """The source URL with its password, from the secrets store, for a source shown masked; read
    here in the worker, the one process that opens the source, and never written anywhere."""
    location = spec["source"]["location"]
    if "secrets" not in spec:
        return None
    owners = [f"job:{spec.get('job_id')}", f"schedule:{spec.get('schedule_id')}"]
    url = SourceSecrets(Path(spec["secrets"])).get(owners)
    if url is None or mask(url) != location:
        raise PermanentFailure(
            f"the password for {location} is no longer on the kit; submit the job again with it"
        )
    return url


class StreamJob:
    def __init__(self, spec: dict[str, Any], report: Reporter, manifest: Manifest, session: Any) -> None:
        params, self.source = spec["params"], spec["source"]
        self.report, self.manifest, self.session = report, manifest, session
        self.fps: float | None = params.get("fps")
        keep, budget = set(params["keep"]), spec["max_result_bytes"]
        # a folder is a backlog (every image) unless it stands for a live camera
        paced = bool(params.get("live")) if self.source["kind"] == "folder" else params["realtime"]
        self.reader = Reader(self.source, paced, params["loop"], source_secret(spec), spec["threads"])
        self.stopped = False  # by the agent, on request
        self.slot = self.reader.slot
        results = report.results
        self.detections = (
            Rotating(results, "results.jsonl", "results.1.jsonl", budget // 8)
            if "detections" in keep
            else None
        )
        counts_file = (
            Rotating(results, "results.csv", "results.1.csv", budget // 32, COUNTS_HEADER)
            if "counts" in keep
            else None
        )
        self.counts = Counts(counts_file, params["interval_s"])
        snapshots = Snapshots(results / SNAPSHOTS, params["max_snapshots"]) if "snapshots" in keep else None
        self.snapshots = snapshots
        header = {
            "job_id": spec.get("job_id"),
            "attempt": spec.get("attempt"),
            "source": mask(self.source["location"]),
            "model": model_fields(manifest),
            "interval_s": params["interval_s"],
        }
        self.publisher = Publisher(results.parent, header, self.stats, snapshots)
        self.unsure = Keeper.of(spec)
        self.processed, self.latencies = 0, Latencies()
        self.out_rate = Rate()
        self.started = time.monotonic()

    def run(self) -> dict[str, Any]:
        self.report.log(
            f"reading {self.source['kind']} {mask(self.source['location'])}"
            + (f" at {self.fps:g} fps at most" if self.fps else "")
        )
        self.reader.start()
        self.publisher.start()
        state = "failed"
        try:
            self._loop()
            state = "ended"
        finally:
            self.reader.stop.set()
            self.slot.close()
            self.reader.join(5)
            self._close(state if self.reader.error is None else "failed")
        if self.reader.error is not None:
            raise self.reader.error
        summary = self.summary()
        self.report.write_json("result.json", summary)
        return summary

    def stop_requested(self, *_: object) -> None:
        """A signal handler: the reader stops, the loop ends as at the source's end."""
        self.stopped = True
        self.reader.stop.set()

    def _loop(self) -> None:
        due = flushed = logged = time.monotonic()
        while True:
            if self.fps:  # hold back; meanwhile newer frames replace older ones in the slot
                time.sleep(max(0.0, due - time.monotonic()))
            frame = self.slot.take(0.5)
            if frame is None:
                if self.slot.finished:
                    return
                self.counts.roll(time.time())  # a quiet source still closes intervals
                self._flush()
                # and tells its count: the last frame's report may have fallen in the throttle
                self.report.progress(self.processed, self.reader.total)
                continue
            now = time.monotonic()
            due = max(due + 1 / self.fps, now) if self.fps else now
            self._process(frame)
            if now - flushed >= FLUSH_EVERY_S:
                flushed = now
                self._flush()
            if now - logged >= LOG_EVERY_S:
                logged = now
                self.report.log(_words(self.stats()))

    def _process(self, frame: Frame) -> None:
        result = run_batch(self.session, self.manifest, [frame.image], TOP_K)[0]
        done = time.monotonic()
        latency_ms = (done - frame.ready) * 1000
        self.processed += 1
        self.latencies.add(latency_ms)
        self.out_rate.tick(done)
        record = _record(self.processed, frame, result, latency_ms)
        labels = [d["label"] for d in record.get("detections", [])] or [
            c["label"] for c in record.get("classes", [])[:1]
        ]
        self.counts.add(labels, time.time())
        if self.detections is not None and labels:
            self.detections.write(json.dumps(record) + "\n")
        if self.unsure is not None and "classes" in record:
            self.unsure.offer_image(frame.image, record["classes"], frame.name or f"frame {frame.index}")
        self.publisher.offer(frame.image, record)
        self.report.progress(self.processed, self.reader.total)

    def stats(self) -> dict[str, Any]:
        return {
            "frames_in": self.reader.decoded,
            "processed": self.processed,
            "dropped": self.slot.dropped,
            "input_fps": self.reader.rate.per_s(),
            "processed_fps": self.out_rate.per_s(),
            "latency_ms": self.latencies.percentiles(),
            "counts": dict(self.counts.current),
            "totals": dict(self.counts.totals),
            "snapshots": self.snapshots.saved if self.snapshots else 0,
            "unreadable": self.reader.unreadable,
            "loops": self.reader.loops,
            "seconds": round(time.monotonic() - self.started, 2),
            "updated_at": time.time(),
        }

    def summary(self) -> dict[str, Any]:
        stats = self.stats()
        seconds = max(time.monotonic() - self.started, 1e-9)
        return {
            **model_fields(self.manifest),
            "source": mask(self.source["location"]),
            **{
                k: stats[k]
                for k in (
                    "frames_in",
                    "processed",
                    "dropped",
                    "latency_ms",
                    "totals",
                    "snapshots",
                    "unreadable",
                    "loops",
                )
            },
            "stopped": self.stopped,
            "seconds": round(seconds, 3),
            "processed_fps": round(self.processed / seconds, 2),
            "input_fps": round(self.reader.decoded / seconds, 2),
            "rotations": sum(f.rotations for f in (self.detections, self.counts.out) if f),
            **(self.unsure.summary() if self.unsure else {}),
        }

    def _flush(self) -> None:
        for out in (self.detections, self.counts.out):
            if out is not None:
                out.flush()

    def _close(self, state: str) -> None:
        self.counts.close(time.time())
        if self.unsure is not None:
            self.unsure.close()  # what it was handed is written before the job ends
        for out in (self.detections, self.counts.out):
            if out is not None:
                out.close()
        self.publisher.finish(state)


def _record(seq: int, frame: Frame, result: InferResult, latency_ms: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": seq,
        "frame": frame.index,
        "t": round(time.time(), 3),
        "latency_ms": round(latency_ms, 2),
    }
    if frame.name is not None:
        record["file"] = frame.name
    if result.detections is not None:
        record["detections"] = [
            {
                "label": d.label,
                "index": d.index,
                "score": round(d.score, 3),
                "box": [round(v, 1) for v in d.box],
            }
            for d in result.detections
        ]
    if result.classes is not None:
        record["classes"] = [
            {"label": c.label, "index": c.index, "score": round(c.score, 3)} for c in result.classes
        ]
    return record


def _words(stats: dict[str, Any]) -> str:
    latency = stats["latency_ms"]
    return (
        f"{stats['processed']} frame(s) processed of {stats['frames_in']} read, "
        f"{stats['dropped']} dropped; {stats['processed_fps']} fps; "
        f"latency p50 {latency['p50']} ms, p99 {latency['p99']} ms"
    )
