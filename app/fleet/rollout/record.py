"""What a rollout is, as the inventory keeps it: the plan, the phase, and each kit's state.

Everything the engine needs to continue after the laptop's process died is here; nothing is
kept only in memory. The record is plain data (JSON in the inventory), read back as is.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from app.fleet.errors import Error

__all__ = [
    "FINISHED",
    "KitState",
    "Rollout",
    "RolloutError",
    "Thresholds",
    "failures_allowed",
    "new_rollout_id",
    "parse_max_failures",
    "parse_waves",
    "wave_sizes",
]

Phase = Literal["uploading", "activating", "soaking", "waiting", "rolling-back", "done", "failed", "aborted"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "aborted"})
KitStatus = Literal[
    "pending", "uploaded", "active", "soaking", "passed", "failed", "rolled-back", "offline-waiting"
]
MAX_WAVES = 10


class RolloutError(Error):
    """A rollout cannot be planned, started or changed as asked."""


@dataclass
class Thresholds:
    """When a kit fails its soak. Latency: new p50 above `ratio` × the previous version's
    plus `slack_ms` (sub-millisecond models jitter by more than any ratio on a busy kit)."""

    max_failures: str = "0"  # "N" kits or "P%" of a wave, beyond which the rollout stops
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 2.0
    max_accuracy_loss: float = 1.0  # percentage points of top-1 below the previous version
    max_error_rate: float = 0.0  # failed share of the model's jobs and infer requests since activation


@dataclass
class KitState:
    device_id: str
    name: str
    wave: int  # 0: the canaries
    state: KitStatus = "pending"
    previous_version: str | None = None  # serving before the rollout: what a rollback restores
    inspected: bool = False  # previous_version was read from the kit (not merely unknown)
    uploaded: bool = False
    activated: bool = False  # this rollout made the new version serve here
    activated_at: float | None = None
    version: str = ""  # the version this kit takes (a precision choice may pick another)
    detail: str = ""
    checks: dict[str, Any] = field(default_factory=dict)  # soak figures, for status and the report

    @property
    def settled(self) -> bool:
        return self.state in ("passed", "failed", "rolled-back")


@dataclass
class Rollout:
    rollout_id: str
    model: str
    version: str
    sha256: str
    model_path: str  # the package on this laptop, read again to upload after a restart
    kits: list[KitState]
    waves: list[float]  # cumulative fractions of the non-canary kits, the last 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    soak_s: float = 60.0
    eval_dataset: str | None = None  # a local folder of labelled images
    choose_precision: bool = False
    variants: list[str] = field(default_factory=list)  # other packages of the model (precision)
    prefer: str = "speed"  # the precision choice within the tolerance: "speed" or "energy"
    force: bool = False
    refused: dict[str, str] = field(default_factory=dict)  # kit name -> the gates it misses
    phase: Phase = "uploading"
    wave: int = 0
    wave_started_at: float | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    reason: str = ""  # why it stopped, when it did

    @property
    def wave_count(self) -> int:
        return 1 + len(self.waves)

    def in_wave(self, wave: int) -> list[KitState]:
        return [k for k in self.kits if k.wave == wave]

    def kit(self, device_id: str) -> KitState:
        return next(k for k in self.kits if k.device_id == device_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        data = dict(data)
        data["kits"] = [KitState(**k) for k in data["kits"]]
        data["thresholds"] = Thresholds(**data["thresholds"])
        return cls(**data)


def new_rollout_id() -> str:
    return "ro-" + secrets.token_hex(4)


def parse_waves(text: str) -> list[float]:
    """`25%,100%` (or `0.25,1`): cumulative shares of the kits after the canaries."""
    shares: list[float] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)", part)
        if not match:
            raise RolloutError(f"--waves: {part!r} is not a share; write e.g. 25%,100%")
        share = float(match[1]) / (100 if match[2] or float(match[1]) > 1 else 1)
        if not 0 < share <= 1 or (shares and share <= shares[-1]):
            raise RolloutError(f"--waves: {part!r} must grow from wave to wave, up to 100%")
        shares.append(share)
    if not shares or len(shares) > MAX_WAVES:
        raise RolloutError(f"--waves: give 1 to {MAX_WAVES} shares, e.g. 25%,100%")
    if shares[-1] != 1.0:
        shares.append(1.0)  # every kit is reached: a last wave takes the rest
    return shares


def wave_sizes(kits: int, waves: list[float]) -> list[int]:
    """How many of `kits` each wave takes; every wave at least one while kits remain."""
    sizes, done = [], 0
    for share in waves:
        upto = min(kits, max(done + 1, math.ceil(share * kits)))
        sizes.append(upto - done)
        done = upto
    return sizes


def parse_max_failures(text: str) -> str:
    if not re.fullmatch(r"\d+%?", text.strip()) or (text.endswith("%") and int(text[:-1]) > 100):
        raise RolloutError(f"--max-failures: {text!r} is neither a count (2) nor a share (10%)")
    return text.strip()


def failures_allowed(spec: str, wave_kits: int) -> int:
    """Kits of a wave that may fail before the rollout stops."""
    if spec.endswith("%"):
        return math.floor(int(spec[:-1]) * wave_kits / 100)
    return int(spec)
