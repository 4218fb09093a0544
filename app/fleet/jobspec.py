"""A job as a technician describes it, checked against the wire contract before any kit is asked.

The checks are the contract's own (`JobRequest` and the parameter model of each kind), so
the app never accepts what a kit would refuse for shape alone; only their wording changes,
from pydantic's to sentences that name the field and say what it takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.wire import (
    NAME_PATTERN,
    PARAMS_BY_KIND,
    VERSION_PATTERN,
    WINDOW_PATTERN,
    JobRequest,
    MissedRuns,
    ScheduleRequest,
)
from app.fleet.errors import Error

__all__ = ["KINDS", "JobInputError", "JobSpec", "parse_numbers", "takes_images"]

KINDS = tuple(PARAMS_BY_KIND)
_SEPARATORS = re.compile(r"[\s,;]+")
_PATTERNS = {
    NAME_PATTERN: "lower-case letters, digits, - and _ (e.g. digits-cnn)",
    VERSION_PATTERN: "a version such as 1.0 or 2-int8",
    WINDOW_PATTERN: "HH:MM-HH:MM on the kit's 24-hour clock (e.g. 22:00-06:00)",
}


class JobInputError(Error):
    """The job as described cannot be valid on any kit; nothing was sent."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class JobSpec:
    """What to run and under which limits; None leaves a field to the contract's default."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    threads: int | None = None
    memory_mb: int | None = None
    gpu: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    not_before: float | None = None
    window: str | None = None
    min_battery_percent: float | None = None
    max_temperature_c: float | None = None
    label: str = ""

    def request(self, idempotency_key: str | None = None) -> JobRequest:
        """The checked request, or JobInputError listing every problem found."""
        if self.kind not in PARAMS_BY_KIND:
            raise JobInputError([f"unknown job kind {self.kind!r}; the kinds are {', '.join(KINDS)}"])
        problems, request = self._params_problems(), None
        try:
            request = JobRequest.model_validate(self._body(idempotency_key))
        except ValidationError as exc:  # the params' own problems are already listed, worded better
            problems += [p for p in _reworded(exc, self.kind, None) if not p.startswith("params for ")]
        if problems or request is None:
            raise JobInputError(problems)
        return request

    def _params_problems(self) -> list[str]:
        params_model = PARAMS_BY_KIND[self.kind]
        try:
            params_model.model_validate(self.params)
        except ValidationError as exc:
            return _reworded(exc, self.kind, params_model)
        return []

    @property
    def schedule_name(self) -> str:
        """What a schedule of this job is called unless named: its label, else what it runs."""
        model = self.params.get("model")
        return self.label or (f"{self.kind} {model}" if model else self.kind)

    def schedule(self, name: str, cron: str, missed: MissedRuns) -> ScheduleRequest:
        """A schedule that queues this job at each time `cron` names (checked by the kit)."""
        try:
            return ScheduleRequest(name=name, cron=cron.strip(), job=self.request(), missed=missed)
        except ValidationError as exc:
            raise JobInputError(_reworded(exc, self.kind, None)) from None

    def _body(self, idempotency_key: str | None) -> dict[str, Any]:
        resources = {"threads": self.threads, "memory_mb": self.memory_mb, "gpu": self.gpu}
        gates = {"min_battery_percent": self.min_battery_percent, "max_temperature_c": self.max_temperature_c}
        body = {
            "kind": self.kind,
            "params": self.params,
            "priority": self.priority,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "not_before": self.not_before,
            "window": self.window,
            "label": self.label,
            "idempotency_key": idempotency_key,
            "resources": _given(resources),
            "gates": _given(gates),
        }
        return _given(body)


def parse_numbers(text: str, what: str) -> list[int]:
    """Whole numbers separated by commas or spaces ("1, 4, 8"), for a list parameter."""
    try:
        return [int(part) for part in _SEPARATORS.split(text.strip()) if part]
    except ValueError:
        raise JobInputError([f"{what} {text!r}: give whole numbers separated by commas, e.g. 1, 8"]) from None


def takes_images(kind: str) -> bool:
    """Whether a kind reads a folder or dataset of images (and so can use an upload)."""
    model = PARAMS_BY_KIND.get(kind)
    return model is not None and "dataset" in model.model_fields


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _reworded(exc: ValidationError, kind: str, params_model: type[BaseModel] | None) -> list[str]:
    return [_sentence(err, kind, params_model) for err in exc.errors()[:5]]


def _sentence(err: Any, kind: str, params_model: type[BaseModel] | None) -> str:
    where = str(err["loc"][-1]) if err["loc"] else ""
    kind_text = f"a {kind} job"
    ctx = err.get("ctx") or {}
    if err["type"] == "missing":
        return f"{kind_text} needs {where}"
    if err["type"] == "extra_forbidden" and params_model is not None:
        known = ", ".join(params_model.model_fields)
        return f"{kind_text} takes no parameter {where!r}; it takes {known}"
    if err["type"] == "too_short":
        least = ctx.get("min_length", 1)
        return f"{where} needs at least {least} value{'' if least == 1 else 's'}"
    if err["type"] == "model_type":
        return f"the parameters of {kind_text} must be a mapping of names to values"
    if err["type"] == "string_pattern_mismatch":
        wanted = _PATTERNS.get(ctx.get("pattern", ""), f"text matching {ctx.get('pattern')}")
        return f"{where} {err['input']!r} is not valid: use {wanted}"
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Input ")
    if err["type"] == "value_error" or not where:
        return message
    return f"{where} {message} (got {err['input']!r})"
