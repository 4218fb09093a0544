"""The agent's settings, each declared once with type, default and description.

Search order: command-line flag, then environment (`KITFLEET_AGENT_<NAME>`),
then `agent.json` in the data dir, then the default below.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.energy import DEFAULT_TDP_W
from agent.toolkit.settings import describe, resolve, setting

CONFIG_FILE = "agent.json"
ENV_PREFIX = "KITFLEET_AGENT_"


@dataclass
class Settings:
    data_dir: Path = field(metadata=setting("where identity, database, models and jobs live"))
    host: str = field(default="0.0.0.0", metadata=setting("address the HTTPS API listens on"))
    port: int = field(default=8443, metadata=setting("TCP port of the API; 0 picks a free one"))
    name: str = field(default_factory=socket.gethostname, metadata=setting("display name of the kit"))
    kit_model: str = field(default="", metadata=setting("kit model shown to technicians; DMI if empty"))
    mdns: bool = field(default=True, metadata=setting("announce the kit over mDNS"))
    mdns_interfaces: list[str] = field(
        default_factory=list,
        metadata=setting("addresses to announce on; empty means every interface (field use)"),
    )
    metrics_interval_s: float = field(default=10.0, metadata=setting("seconds between metric samples"))
    metrics_capacity: int = field(default=8640, metadata=setting("samples kept in the on-disk ring"))
    max_body_bytes: int = field(default=1 << 20, metadata=setting("largest JSON request body accepted"))
    max_model_bytes: int = field(default=4 << 30, metadata=setting("largest model file accepted"))
    max_infer_bytes: int = field(default=32 << 20, metadata=setting("largest image or tensor to infer"))
    disk_reserve_bytes: int = field(default=64 << 20, metadata=setting("space uploads never use"))
    session_cache: int = field(default=4, metadata=setting("ONNX Runtime sessions kept loaded"))
    infer_batch_window_ms: float = field(
        default=2.0,
        metadata=setting(
            "concurrent infer requests on one model wait this long at most "
            "to run as one batch; 0 turns batching off"
        ),
    )
    jobs_data_roots: list[str] = field(
        default_factory=list,
        metadata=setting("folders jobs may read; empty means <data_dir>/datasets"),
    )
    jobs_allowed_commands: list[str] = field(
        default_factory=list,
        metadata=setting("absolute paths of programs `command` jobs may run; empty turns them off"),
    )
    allowed_stream_hosts: list[str] = field(
        default_factory=list,
        metadata=setting(
            "stream source hosts (names, addresses or networks like 10.9.0.0/16) allowed "
            "even where they are loopback, link-local or the kit's own; LAN cameras "
            "need no entry"
        ),
    )
    tdp_w: float = field(
        default=DEFAULT_TDP_W,
        metadata=setting(
            "the CPU's power at full load, watts: a job's energy is estimated from its CPU "
            "time with it where the kit cannot measure (no readable RAPL, NVML or battery)",
            positive=True,
        ),
    )
    jobs_threads: int = field(default=0, metadata=setting("threads jobs may hold; 0 = logical CPUs"))
    jobs_memory_mb: int = field(default=0, metadata=setting("memory jobs may hold, MiB; 0 = all RAM"))
    jobs_gpus: int = field(default=-1, metadata=setting("GPUs jobs may hold; -1 = the NVIDIA GPUs found"))
    jobs_max_running: int = field(default=4, metadata=setting("jobs running at the same time, at most"))
    jobs_max_queued: int = field(default=10000, metadata=setting("unfinished jobs accepted, at most"))
    jobs_aging_s: float = field(
        default=600.0, metadata=setting("a queued job gains one priority level per this many seconds")
    )
    jobs_lease_s: float = field(default=30.0, metadata=setting("lease of a running job, renewed while alive"))
    jobs_retention_days: float = field(
        default=7.0, metadata=setting("finished jobs, logs and results are deleted after this")
    )
    jobs_max_log_bytes: int = field(default=1 << 20, metadata=setting("log kept per job; the rest dropped"))
    jobs_max_result_bytes: int = field(default=256 << 20, metadata=setting("result files per job, at most"))
    jobs_max_total_mb: int = field(
        default=2048, metadata=setting("all jobs' files; the oldest finished jobs go first beyond it")
    )
    max_dataset_bytes: int = field(
        default=1 << 30, metadata=setting("largest dataset accepted, as sent and as unpacked")
    )
    max_dataset_files: int = field(
        default=100_000, metadata=setting("most files and folders a dataset archive may unpack to")
    )
    http_max_connections: int = field(
        default=512, metadata=setting("connections and requests served at once; more get 503")
    )
    http_header_timeout_s: float = field(
        default=10.0,  # agent.wire.IDLE_CLOSE_S, which clients keep idle connections under
        metadata=setting(
            "seconds a client may take to send a request's headers; slower connections are closed (slowloris)"
        ),
    )
    http_max_header_bytes: int = field(
        default=64 << 10, metadata=setting("largest request headers accepted; larger get 431")
    )
    audit_segment_entries: int = field(
        default=5000, metadata=setting("audit log entries per segment; the log rotates by segments")
    )
    audit_segments_kept: int = field(
        default=10, metadata=setting("audit log segments kept; older ones are dropped, the rest still verify")
    )
    audit_refusal_window_s: float = field(
        default=60.0,
        metadata=setting(
            "repeated refusals from one client within this many seconds "
            "are counted in one audit entry, not written one by one"
        ),
    )
    bundle_dir: str = field(
        default="",
        metadata=setting("a folder watched for signed bundles to import (e.g. a USB mount); empty: none"),
    )
    bundle_poll_s: float = field(
        default=5.0, metadata=setting("seconds between looks for new bundles (watched folder, hand-offs)")
    )

    clock_control: str = field(
        default="auto",
        metadata=setting(
            "how a technician's 'set the clock' reaches this kit: auto (timedated where kitfleet's "
            "polkit rule is installed), timedated, off (never), test-offset (TEST ONLY: the agent's "
            "own offset, the machine's clock untouched)"
        ),
    )
    test_clock_offset_s: float = field(
        default=0.0,
        metadata=setting(
            "TEST ONLY: seconds added to the clock the kit reports in a pre-flight, to "
            "simulate a skewed kit; leave 0 in the field"
        ),
    )

    @classmethod
    def resolve(cls, data_dir: Path, flags: dict[str, Any]) -> Settings:
        """Merge flag > environment > data-dir file > default, checking types."""
        return resolve(
            cls,
            flags,
            data_dir / CONFIG_FILE,
            lambda f: ENV_PREFIX + f.name.upper(),
            fixed={"data_dir": data_dir},
            sections=("data_dir",),
        )  # it names itself: ignored

    def describe(self) -> dict[str, dict[str, Any]]:
        return describe(self)
