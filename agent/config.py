"""The agent's settings, each declared once with type, default and description.

Search order: command-line flag, then environment (`KITFLEET_AGENT_<NAME>`),
then `agent.json` in the data dir, then the default below.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_FILE = "agent.json"
ENV_PREFIX = "KITFLEET_AGENT_"


def _meta(description: str) -> dict[str, str]:
    return {"description": description}


@dataclass
class Settings:
    data_dir: Path = field(metadata=_meta("where identity, database, models and jobs live"))
    host: str = field(default="0.0.0.0", metadata=_meta("address the HTTPS API listens on"))
    port: int = field(default=8443, metadata=_meta("TCP port of the API; 0 picks a free one"))
    name: str = field(default_factory=socket.gethostname, metadata=_meta("display name of the kit"))
    kit_model: str = field(default="", metadata=_meta("kit model shown to technicians; DMI if empty"))
    mdns: bool = field(default=True, metadata=_meta("announce the kit over mDNS"))
    mdns_interfaces: list[str] = field(
        default_factory=list,
        metadata=_meta("addresses to announce on; empty means every interface (field use)"),
    )
    metrics_interval_s: float = field(default=10.0, metadata=_meta("seconds between metric samples"))
    metrics_capacity: int = field(default=8640, metadata=_meta("samples kept in the on-disk ring"))
    max_body_bytes: int = field(default=1 << 20, metadata=_meta("largest JSON request body accepted"))
    max_model_bytes: int = field(default=4 << 30, metadata=_meta("largest model file accepted"))
    max_infer_bytes: int = field(default=32 << 20, metadata=_meta("largest image or tensor to infer"))
    disk_reserve_bytes: int = field(default=64 << 20, metadata=_meta("space uploads never use"))
    session_cache: int = field(default=4, metadata=_meta("ONNX Runtime sessions kept loaded"))
    infer_batch_window_ms: float = field(
        default=2.0, metadata=_meta("concurrent infer requests on one model wait this long at most "
                                    "to run as one batch; 0 turns batching off"))
    jobs_data_roots: list[str] = field(
        default_factory=list,
        metadata=_meta("folders jobs may read; empty means <data_dir>/datasets"),
    )
    jobs_allowed_commands: list[str] = field(
        default_factory=list,
        metadata=_meta("absolute paths of programs `command` jobs may run; empty turns them off"),
    )
    allowed_stream_hosts: list[str] = field(
        default_factory=list,
        metadata=_meta("stream source hosts (names, addresses or networks like 10.9.0.0/16) allowed "
                       "even where they are loopback, link-local or the kit's own; LAN cameras "
                       "need no entry"),
    )
    jobs_threads: int = field(default=0, metadata=_meta("threads jobs may hold; 0 = logical CPUs"))
    jobs_memory_mb: int = field(default=0, metadata=_meta("memory jobs may hold, MiB; 0 = all RAM"))
    jobs_gpus: int = field(default=-1, metadata=_meta("GPUs jobs may hold; -1 = the NVIDIA GPUs found"))
    jobs_max_running: int = field(default=4, metadata=_meta("jobs running at the same time, at most"))
    jobs_max_queued: int = field(default=10000, metadata=_meta("unfinished jobs accepted, at most"))
    jobs_aging_s: float = field(
        default=600.0, metadata=_meta("a queued job gains one priority level per this many seconds"))
    jobs_lease_s: float = field(default=30.0, metadata=_meta("lease of a running job, renewed while alive"))
    jobs_retention_days: float = field(
        default=7.0, metadata=_meta("finished jobs, logs and results are deleted after this"))
    jobs_max_log_bytes: int = field(default=1 << 20, metadata=_meta("log kept per job; the rest dropped"))
    jobs_max_result_bytes: int = field(default=256 << 20, metadata=_meta("result files per job, at most"))
    jobs_max_total_mb: int = field(
        default=2048, metadata=_meta("all jobs' files; the oldest finished jobs go first beyond it"))
    max_dataset_bytes: int = field(
        default=1 << 30, metadata=_meta("largest dataset accepted, as sent and as unpacked"))
    max_dataset_files: int = field(
        default=100_000, metadata=_meta("most files and folders a dataset archive may unpack to"))
    http_max_connections: int = field(
        default=512, metadata=_meta("connections and requests served at once; more get 503"))
    http_header_timeout_s: float = field(
        default=10.0, metadata=_meta("seconds a client may take to send a request's headers; "
                                     "slower connections are closed (slowloris)"))
    http_max_header_bytes: int = field(
        default=64 << 10, metadata=_meta("largest request headers accepted; larger get 431"))
    audit_segment_entries: int = field(
        default=5000, metadata=_meta("audit log entries per segment; the log rotates by segments"))
    audit_segments_kept: int = field(
        default=10, metadata=_meta("audit log segments kept; older ones are dropped, the rest "
                                   "still verify"))
    audit_refusal_window_s: float = field(
        default=60.0, metadata=_meta("repeated refusals from one client within this many seconds "
                                     "are counted in one audit entry, not written one by one"))

    @classmethod
    def resolve(cls, data_dir: Path, flags: dict[str, Any]) -> Settings:
        """Merge flag > environment > data-dir file > default, checking types."""
        from_file = _read_file(data_dir / CONFIG_FILE)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "data_dir":
                continue
            env_name = ENV_PREFIX + f.name.upper()
            env = os.environ.get(env_name)
            if flags.get(f.name) is not None:
                values[f.name] = flags[f.name]
            elif env is not None:
                values[f.name] = _coerce(env_name, str(f.type), env)
            elif f.name in from_file:
                values[f.name] = _coerce(f"{data_dir / CONFIG_FILE}: {f.name}", str(f.type),
                                         from_file[f.name])
        return cls(data_dir=data_dir, **values)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: {"value": str(getattr(self, f.name)), "description": f.metadata["description"]}
            for f in fields(self)
        }


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}; fix or remove the file") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"{path} must hold a JSON object of settings")
    unknown = sorted(set(data) - {f.name for f in fields(Settings)} - {"data_dir"})
    if unknown:
        raise SystemExit(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(f.name for f in fields(Settings))}")
    return data


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(where: str, type_name: str, value: Any) -> Any:
    """Check a setting from the environment (a string) or agent.json (JSON types)."""
    try:
        return _COERCE[type_name.split("[")[0]](value)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"{where}={value!r} is not a valid {type_name} ({exc})") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"use one of {', '.join(sorted(_TRUE | _FALSE))}")
    return text in _TRUE


def _number(kind: type[int] | type[float]) -> Any:
    def parse(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError("expected a number")
        if kind is int and isinstance(value, float):
            raise TypeError("expected a whole number")
        return kind(value)

    return parse


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise TypeError("expected a list of strings or a comma-separated string")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


_COERCE = {"bool": _bool, "int": _number(int), "float": _number(float), "list": _list, "str": _str}
