"""Staged rollouts (issue 21): canaries first, then waves, each soaked and checked on the kits
themselves; a failed threshold rolls the activated kits back. The rollout is state in the app's
inventory (`store`), driven step by step by `engine`, so it survives a laptop restart."""

from __future__ import annotations

from app.fleet.rollout.control import (
    async_abort,
    async_resume,
    async_resume_waiting,
    async_start,
    pause,
    status_lines,
)
from app.fleet.rollout.engine import Engine, Event
from app.fleet.rollout.plan import Plan
from app.fleet.rollout.record import FINISHED, KitState, Rollout, RolloutError, Thresholds
from app.fleet.rollout.store import RolloutStore

__all__ = [
    "FINISHED",
    "Engine",
    "Event",
    "KitState",
    "Plan",
    "Rollout",
    "RolloutError",
    "RolloutStore",
    "Thresholds",
    "async_abort",
    "async_resume",
    "async_resume_waiting",
    "async_start",
    "pause",
    "status_lines",
]
