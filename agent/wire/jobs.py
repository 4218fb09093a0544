"""Jobs, their kinds' parameters, schedules and datasets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.wire.base import WireModel
from agent.wire.field_datasets import KeepUnsure
from agent.wire.finetune import FineTuneParams
from agent.wire.models import NAME_PATTERN, VERSION_PATTERN
from agent.wire.text import PlainText, _no_controls

__all__ = [
    "FINISHED_STATES",
    "JOB_ID_PATTERN",
    "PARAMS_BY_KIND",
    "RESULT_FILES",
    "STREAM_KEEP",
    "WINDOW_PATTERN",
    "BatchInferParams",
    "BenchmarkParams",
    "CommandParams",
    "DatasetInfo",
    "EvaluateParams",
    "Gates",
    "JobInfo",
    "JobKind",
    "JobLogs",
    "JobProgress",
    "JobRequest",
    "JobResults",
    "JobState",
    "JobSubmission",
    "MissedRuns",
    "QuantizeParams",
    "Resources",
    "ResultFile",
    "ScheduleInfo",
    "ScheduleRequest",
    "ScheduleUpdate",
    "StreamKeep",
    "StreamParams",
]


JobKind = Literal["batch-infer", "benchmark", "evaluate", "quantize", "command", "stream", "fine-tune"]


JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]


FINISHED_STATES: tuple[JobState, ...] = ("done", "failed", "cancelled", "interrupted")


MissedRuns = Literal["skip", "run_once"]


WINDOW_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"


JOB_ID_PATTERN = r"^[0-9a-f]{24}$"


RESULT_FILES = (
    "results.jsonl",
    "results.csv",
    "result.json",
    "model.onnx",
    "manifest.json",
    "results.1.jsonl",
    "results.1.csv",
)  # .1: the part a stream job rotated out


class Resources(WireModel):
    """What a job holds while it runs; admission never oversubscribes the kit."""

    threads: int = Field(default=1, ge=1, le=4096, description="CPU threads (intra-op threads)")
    memory_mb: int = Field(default=256, ge=1, le=1 << 30, description="memory it may use, MiB")
    gpu: int = Field(default=0, ge=0, le=64, description="whole GPUs")


class Gates(WireModel):
    """Conditions checked on the kit before a job starts; a job waits while one fails."""

    min_battery_percent: float | None = Field(
        default=None, ge=0, le=100, description="on battery, start only above this"
    )
    max_temperature_c: float | None = Field(
        default=None, ge=-50, le=200, description="start only while the hottest sensor is below"
    )


class _Params(WireModel):
    model_config = ConfigDict(extra="forbid")


class _ModelParams(_Params):
    model: str = Field(pattern=NAME_PATTERN, description="a deployed model's name")
    version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="a version; the serving one when empty"
    )


def _one_input(folder: str | None, dataset: str | None, what: str) -> None:
    if (folder is None) == (dataset is None):
        raise ValueError(f"give exactly one of folder or dataset for the {what}")


class BatchInferParams(_ModelParams):
    folder: str | None = Field(
        default=None, max_length=4096, description="images under one of the kit's data roots"
    )
    dataset: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="an uploaded dataset (POST /v1/datasets/{name})"
    )
    top_k: int = Field(default=5, ge=1, le=100)
    keep_unsure: KeepUnsure | None = Field(
        default=None, description="keep the images the model was unsure about (GET /v1/unsure)"
    )

    @model_validator(mode="after")
    def _input(self) -> BatchInferParams:
        _one_input(self.folder, self.dataset, "images")
        return self


class BenchmarkParams(_ModelParams):
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1, max_length=8)
    threads: list[int] = Field(
        default_factory=list, max_length=8, description="intra-op thread counts; empty = the job's threads"
    )
    runs: int = Field(default=50, ge=1, le=100000)
    warmup: int = Field(default=5, ge=0, le=1000)

    @model_validator(mode="after")
    def _ranges(self) -> BenchmarkParams:
        if any(not 1 <= b <= 256 for b in self.batch_sizes):
            raise ValueError("batch_sizes must be between 1 and 256")
        if any(not 1 <= t <= 4096 for t in self.threads):
            raise ValueError("threads must be between 1 and 4096")
        return self


class EvaluateParams(_ModelParams):
    folder: str | None = Field(
        default=None, max_length=4096, description="one sub-folder per label, named as the model's labels"
    )
    dataset: str | None = Field(default=None, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _input(self) -> EvaluateParams:
        _one_input(self.folder, self.dataset, "labelled set")
        return self


class QuantizeParams(_ModelParams):
    output_version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="version of the INT8 model; default <version>-int8"
    )
    per_channel: bool = False
    install: bool = Field(default=True, description="install the result as a new (inactive) version")


class CommandParams(_Params):
    argv: list[str] = Field(
        min_length=1, max_length=256, description="program and arguments; run without a shell"
    )

    @model_validator(mode="after")
    def _sizes(self) -> CommandParams:
        if any(len(arg) > 4096 or "\0" in arg for arg in self.argv):
            raise ValueError("each argument must be at most 4096 characters, without NUL")
        return self


StreamKeep = Literal["detections", "counts", "snapshots"]


STREAM_KEEP: tuple[StreamKeep, ...] = ("detections", "counts", "snapshots")


class StreamParams(_ModelParams):
    """Continuous inference on a camera, stream, video file or watched folder."""

    source: str = Field(
        min_length=1,
        max_length=4096,
        description="/dev/videoN, rtsp://, http(s):// URL, or a video file or image "
        "folder under one of the kit's data roots",
    )
    fps: float | None = Field(
        default=None,
        gt=0,
        le=240,
        description="frames to process per second at most; empty = as the source gives",
    )
    keep: list[StreamKeep] = Field(
        default_factory=lambda: list(STREAM_KEEP), max_length=3, description="what to store on the kit"
    )
    interval_s: float = Field(default=10.0, ge=1, le=3600, description="counts per label per interval")
    max_snapshots: int = Field(default=50, ge=0, le=10000, description="annotated frames kept, newest")
    realtime: bool = Field(
        default=True,
        description="read a video file at the pace of a camera, dropping frames; false "
        "processes every one (a folder: see live)",
    )
    loop: bool = Field(default=False, description="start a video file again when it ends")
    live: bool | None = Field(
        default=None,
        description="a watched folder as a live camera: images the model cannot keep up with "
        "are dropped; empty or false (a backlog) processes every image. Empty is left out of "
        "requests, so a kit from before this field takes them",
    )
    dataset: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="an uploaded dataset; `source` is then a file or folder inside it",
    )
    keep_unsure: KeepUnsure | None = Field(
        default=None, description="keep the frames the model was unsure about (GET /v1/unsure)"
    )


PARAMS_BY_KIND: dict[str, type[BaseModel]] = {
    "batch-infer": BatchInferParams,
    "benchmark": BenchmarkParams,
    "evaluate": EvaluateParams,
    "quantize": QuantizeParams,
    "command": CommandParams,
    "stream": StreamParams,
    "fine-tune": FineTuneParams,
}


def _params_schema(schema: dict[str, Any]) -> None:
    """Document each kind's parameters in OpenAPI, so a client or fuzzer sees the real shapes."""
    schema["anyOf"] = [
        {**model.model_json_schema(), "title": f"{kind} params"} for kind, model in PARAMS_BY_KIND.items()
    ]


class JobRequest(WireModel):
    """A job to queue. `params` are checked against the kind's parameter model."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    params: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=_params_schema,
        description="the kind's parameters (one of the schemas listed)",
    )
    priority: int = Field(default=0, ge=-100, le=100, description="higher starts first")
    resources: Resources = Field(default_factory=Resources)
    timeout_s: float = Field(default=3600.0, gt=0, le=7 * 86400, description="per attempt")
    max_retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_s: float = Field(
        default=30.0, ge=0, le=86400, description="first retry delay; doubles on each retry"
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=128, description="the same key twice is the same job"
    )
    not_before: float | None = Field(default=None, ge=0, description="Unix time")
    window: str | None = Field(
        default=None, pattern=WINDOW_PATTERN, description="HH:MM-HH:MM on the kit's clock, may wrap midnight"
    )
    gates: Gates = Field(default_factory=Gates)
    label: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _params(self) -> JobRequest:
        try:
            checked = PARAMS_BY_KIND[self.kind].model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"params for {self.kind}: {_errors(exc)}") from None
        self.params = checked.model_dump(exclude_none=True)
        return self

    def typed_params(self) -> BaseModel:
        return PARAMS_BY_KIND[self.kind].model_validate(self.params)


def _plain_label(request: JobRequest) -> JobRequest:
    try:
        _no_controls(request.label)
    except ValueError as exc:
        raise ValueError(f"label {exc}") from None
    return request


# A job as submitted: its label is plain text. (JobRequest itself also reads back jobs that an
# older agent stored with any label, so the check is on the way in only.)
JobSubmission = Annotated[JobRequest, AfterValidator(_plain_label)]


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}" for err in exc.errors()[:5]
    )


class JobProgress(WireModel):
    done: int = 0
    total: int | None = None


class JobInfo(WireModel):
    job_id: str
    kind: JobKind
    label: str
    state: JobState
    request: JobRequest
    attempts: int = Field(description="starts so far, including the current one")
    progress: JobProgress
    waiting: str | None = Field(default=None, description="why a queued job has not started")
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    result: dict[str, Any] | None = Field(default=None, description="summary; files via /results")
    error: str | None = None
    schedule_id: str | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="what the kit cannot do as asked, e.g. a gate with no sensor to enforce it",
    )


class JobLogs(WireModel):
    job_id: str
    offset: int
    next_offset: int
    text: str
    finished: bool = Field(description="the job has finished: no more lines will come")


class ResultFile(WireModel):
    name: str
    size: int


class JobResults(WireModel):
    job_id: str
    state: JobState
    result: dict[str, Any] | None
    files: list[ResultFile]
    expires_at: float | None = Field(default=None, description="when results are deleted if not collected")


class ScheduleRequest(WireModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=100)
    cron: str = Field(
        min_length=1,
        max_length=200,
        description="5 fields (minute hour day month weekday), or 6 with seconds last",
    )
    job: JobRequest
    missed: MissedRuns = Field(
        default="skip", description="runs missed while the agent was down: skip, or run once"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _plain_job_label(self) -> ScheduleRequest:
        _plain_label(self.job)
        return self


class ScheduleUpdate(WireModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=200)
    missed: MissedRuns | None = None
    enabled: bool | None = None


class ScheduleInfo(WireModel):
    schedule_id: str
    name: str
    cron: str
    job: JobRequest
    missed: MissedRuns
    enabled: bool
    next_run_at: float | None
    last_run_at: float | None
    last_job_id: str | None
    created_at: float


class DatasetInfo(WireModel):
    name: str
    files: int
    size: int
