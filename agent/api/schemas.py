"""The wire contract between the app and the agent.

This is the only module the app may import from `agent`. It must stay free of
server code: pydantic models, constants and small pure helpers only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from importlib import metadata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

try:
    PACKAGE_VERSION = metadata.version("kitfleet")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    PACKAGE_VERSION = "0.0.0+source"

API_VERSION = "1"
SERVICE_TYPE = "_kitfleet._tcp.local."
HEALTH_PATH = "/v1/health"

Scope = Literal["viewer", "operator", "admin"]
SCOPES: tuple[Scope, ...] = ("viewer", "operator", "admin")

# Pairing: the code is stretched with scrypt, salted with the device ID the app
# sees in the TLS certificate. A proof made against a different certificate
# (a man in the middle) never verifies on the real kit, and the stretching makes
# brute-forcing a captured proof within the code's lifetime impractical.
PAIR_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read off a label
PAIR_CODE_LENGTH = 8
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def normalise_pair_code(code: str) -> str:
    """Upper-case the code and drop separators a technician may type."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def pair_key(code: str, device_id: str) -> bytes:
    """Derive the pairing key from a code and the device ID it is bound to."""
    return hashlib.scrypt(
        normalise_pair_code(code).encode(), salt=device_id.encode(), **_SCRYPT
    )


def pair_proof(key: bytes, device_id: str, app_id: str, nonce: str) -> str:
    """The HMAC an app sends to prove it knows the code for this device."""
    message = f"kitfleet-pair-v1|{device_id}|{app_id}|{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pair_confirm(key: bytes, device_id: str, app_id: str, app_nonce: str, kit_nonce: str,
                 token_id: str, scope: str, token: str) -> str:
    """The HMAC a kit sends back to prove it knows the code too, over everything the app will
    keep. Its own label keeps it apart from the app's proof, so echoing that proves nothing; the
    fields are JSON-encoded, so no two different answers share a message."""
    fields = ["kitfleet-pair-confirm-v1", device_id, app_id, app_nonce, kit_nonce, token_id,
              scope, token]
    return hmac.new(key, json.dumps(fields).encode(), hashlib.sha256).hexdigest()


def device_id_from_der(der: bytes) -> str:
    """Device ID = SHA-256 of the DER certificate, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def format_device_id(device_id: str, groups: int = 4) -> str:
    """Show a device ID the way people read it: `7QXM-2K4D-...` style groups."""
    short = device_id[: groups * 4].upper()
    return "-".join(short[i : i + 4] for i in range(0, len(short), 4))


# Characters that steer a terminal or reorder what a reader sees: C0 and C1 controls (ESC starts
# ANSI sequences, CR overwrites a line), DEL, and the bidi marks, embeddings, overrides and
# isolates (U+202E shows `gpj.exe` as `exe.jpg`). Ordinary Unicode is left alone.
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` safe to show on a terminal, in a log line or a report: every control character
    (CONTROL_CHARACTERS) written as its escape (`\\x1b`, `\\r`, `\\u202e`), the rest unchanged."""
    return CONTROL_CHARACTERS.sub(_escaped, text)


def _no_controls(value: str) -> str:
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(f"must not contain control characters (found {_escaped(found)} at "
                         f"position {found.start()}): use plain text")
    return value


# A name or label a person gave and others will read: no control characters.
PlainText = Annotated[str, AfterValidator(_no_controls)]


class ErrorBody(BaseModel):
    """Every 4xx answer: what went wrong and how to fix it."""

    error: str = Field(description="Machine-readable error code")
    message: str = Field(description="What was wrong, in words a technician can act on")
    hint: str | None = Field(default=None, description="How to fix it")


MAX_INT64 = (1 << 63) - 1  # the kit stores numbers in SQLite: bigger ones are refused with 422
_REFUSALS = {
    400: "the body is not valid JSON, or is empty",
    401: "no bearer token, or an unknown or revoked one",
    403: "the token's scope is too low, or the pairing proof is wrong, used or expired",
    404: "no such model, upload, job, dataset, schedule or token",
    409: "the request conflicts with the current state",
    413: "the body is too large",
    415: "the body's type is not supported",
    422: "a field, parameter or header is invalid: the message names it",
    429: "too many at once; try again later",
    507: "the kit's disk is too full",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's refusals: each one answers an ErrorBody."""
    return {code: {"model": ErrorBody, "description": _REFUSALS[code]} for code in codes}


class DbRecovered(BaseModel):
    """This start found the kit's database damaged, kept it aside and began a fresh one."""

    quarantined: str = Field(description="the damaged file's new name in the data dir")
    reason: str
    at: float
    lost: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    api_version: str
    device_id: str
    recovered: DbRecovered | None = None


class PairRequest(BaseModel):
    app_id: PlainText = Field(min_length=8, max_length=128)
    app_name: PlainText = Field(default="kitfleet", max_length=128,
                                description="shown as the token's label and the audit log's actor")
    nonce: str = Field(min_length=16, max_length=128)
    proof: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    scope: Scope = Field(default="operator", description="what the token may do; admin only "
                         "when asked for (command jobs, tokens, the audit log)")


class PairResponse(BaseModel):
    device_id: str
    name: str
    token: str
    token_id: str
    scope: Scope
    # The kit's proof that it knows the code too, checked by the app before it keeps anything.
    # Empty from a kit older than that check (or from a rogue): the app refuses both.
    kit_nonce: str = Field(default="", description="the kit's own nonce")
    confirm: str = Field(default="", description="pair_confirm(pair key, device ID, app ID, app "
                         "nonce, kit nonce, token ID, scope, token), lower-case hex")


class TokenInfo(BaseModel):
    token_id: str
    label: str
    scope: Scope
    created_at: float
    last_used_at: float | None
    revoked: bool


class Facts(BaseModel):
    """Hardware and software facts: one entry per family, each a plain mapping.

    A family whose source is missing still appears, with `available: false`
    and a `reason`, so the app can show what could not be read.
    """

    device_id: str
    name: str
    collected_at: float
    families: dict[str, dict[str, Any]]


class MetricSample(BaseModel):
    ts: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    temperature_c: float | None = None
    seq: int | None = Field(default=None, description="the ring's sequence number: a clock that "
                            "jumps back does not reorder it; ask for more with since_seq")
    disk_free_bytes: int | None = Field(default=None, description="free where the agent keeps models")
    battery_percent: float | None = Field(default=None, description="None when the kit has no battery")


class Metrics(BaseModel):
    device_id: str
    interval_s: float
    samples: list[MetricSample]
    overwritten: int = Field(default=0, description="samples the ring dropped to stay within its "
                             "capacity since its first: an app that last pulled before the oldest "
                             "held seq missed the difference")


class TxtRecord(BaseModel):
    """What an agent announces over mDNS. A hint only: identity is the pinned key."""

    device_id: str
    name: str
    kit_model: str = ""
    api_version: str = API_VERSION
    agent_version: str = ""

    def to_properties(self) -> dict[str, str]:
        return {
            "id": self.device_id,
            "name": self.name,
            "model": self.kit_model,
            "api": self.api_version,
            "ver": self.agent_version,
        }

    @classmethod
    def from_properties(cls, props: dict[bytes, bytes | None]) -> TxtRecord:
        def get(key: str) -> str:
            value = props.get(key.encode())
            return value.decode("utf-8", "replace") if value else ""

        return cls(
            device_id=get("id"),
            name=get("name"),
            kit_model=get("model"),
            api_version=get("api"),
            agent_version=get("ver"),
        )


# --- models -------------------------------------------------------------------

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$"
Task = Literal["classification", "detection", "raw"]
Precision = Literal["fp32", "fp16", "int8"]


class InputSpec(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="the model's input tensor name")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    height: int = Field(ge=1, le=8192)
    width: int = Field(ge=1, le=8192)
    channels: Literal[1, 3] = 3
    dtype: Literal["float32", "float16", "uint8", "int8"] = "float32"


class Normalisation(BaseModel):
    """x' = (x * scale - mean) / std, per channel, on pixel values 0-255."""

    scale: float = Field(default=1 / 255, gt=0)
    mean: list[float] = Field(default_factory=lambda: [0.0], min_length=1, max_length=3)
    std: list[float] = Field(default_factory=lambda: [1.0], min_length=1, max_length=3)


class DetectionSpec(BaseModel):
    """How to decode a YOLO-style output [N, boxes, 5 + classes] (cx, cy, w, h, objectness)."""

    format: Literal["yolo"] = "yolo"
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.45, ge=0, le=1)
    max_detections: int = Field(default=100, ge=1, le=10000)


class Golden(BaseModel):
    """A self-check run before install: a seeded random input must give these outputs.

    The input is `numpy.random.default_rng(seed).random(shape)` cast to the input
    dtype; `outputs` holds the first values of each output, flattened.
    """

    seed: int = Field(ge=0, le=MAX_INT64)
    outputs: dict[str, list[float]] = Field(min_length=1)
    atol: float = Field(default=1e-3, gt=0)


class Manifest(BaseModel):
    """What a model is and how to feed it. Validated before anything is stored."""

    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits, - and _")
    version: str = Field(pattern=VERSION_PATTERN)
    task: Task
    input: InputSpec
    normalisation: Normalisation = Field(default_factory=Normalisation)
    labels: list[str] = Field(default_factory=list, max_length=100000)
    precision: Precision = "fp32"
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1, le=MAX_INT64)
    source_model: str | None = None
    figures: dict[str, float] = Field(default_factory=dict,
                                      description="accuracy/latency figures when known")
    detection: DetectionSpec | None = None
    golden: Golden | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        channels = self.input.channels
        for name, values in (("mean", self.normalisation.mean), ("std", self.normalisation.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"normalisation.{name} needs 1 or {channels} values, not {len(values)}")
        if any(v <= 0 for v in self.normalisation.std):
            raise ValueError("normalisation.std values must be positive")
        if self.task == "detection" and self.detection is None:
            self.detection = DetectionSpec()
        return self


# A model package is one self-contained ONNX file. Protobuf holds at most 2 GiB, so a larger file
# cannot be one: its weights would live in other files (ONNX "external data").
MAX_ONNX_BYTES = (2 << 30) - 1
_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL


def external_data_of(model: Any) -> list[tuple[str, str]]:
    """(tensor name, file it names) for every tensor of an ONNX ModelProto kept in another file.

    ONNX Runtime would read that file from the kit's disk (older releases from anywhere on it),
    so kits refuse such a model and the app never sends one. Every nested message is walked, so
    a tensor is found wherever it sits: initializers, Constant attributes, sparse initializers,
    If/Loop/Scan bodies, function bodies, training graphs. Parse the model without loading its
    external data (`onnx.load(path, load_external_data=False)`).
    """
    found: set[tuple[str, str]] = set()
    stack = [model]
    while stack:  # a loop, not recursion: subgraphs may nest deeper than Python's stack
        message = stack.pop()
        if message.DESCRIPTOR.name == "TensorProto" and (
                message.data_location == _EXTERNAL or len(message.external_data)):
            location = next((e.value for e in message.external_data if e.key == "location"), "")
            found.add((message.name, location))
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            items = [value] if hasattr(value, "ListFields") else value
            stack.extend(item for item in items if hasattr(item, "ListFields"))
    return sorted(found)


class UploadRequest(BaseModel):
    manifest: Manifest
    activate: bool = False


class UploadStatus(BaseModel):
    upload_id: str
    name: str
    version: str
    offset: int
    size: int
    state: Literal["receiving", "verifying", "installed", "failed"]
    error: str | None = None


class ModelVersion(BaseModel):
    version: str
    precision: Precision
    sha256: str
    size_bytes: int
    installed_at: float
    active: bool


class ModelInfo(BaseModel):
    name: str
    task: Task
    active_version: str | None
    previous_version: str | None
    versions: list[ModelVersion]


class Classification(BaseModel):
    label: str
    index: int
    score: float


class Detection(BaseModel):
    label: str
    index: int
    score: float
    box: tuple[float, float, float, float] = Field(
        description="x1, y1, x2, y2 in the pixels of the image sent (not the model input)")


class InferResult(BaseModel):
    model: str
    version: str
    sha256: str
    task: Task
    latency_ms: float
    classes: list[Classification] | None = None
    detections: list[Detection] | None = None


# --- jobs ---------------------------------------------------------------------

JobKind = Literal["batch-infer", "benchmark", "evaluate", "quantize", "command", "stream"]
JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINISHED_STATES: tuple[JobState, ...] = ("done", "failed", "cancelled", "interrupted")
MissedRuns = Literal["skip", "run_once"]
WINDOW_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"
JOB_ID_PATTERN = r"^[0-9a-f]{24}$"
RESULT_FILES = ("results.jsonl", "results.csv", "result.json", "model.onnx", "manifest.json",
                "results.1.jsonl", "results.1.csv")  # .1: the part a stream job rotated out


class Resources(BaseModel):
    """What a job holds while it runs; admission never oversubscribes the kit."""

    threads: int = Field(default=1, ge=1, le=4096, description="CPU threads (intra-op threads)")
    memory_mb: int = Field(default=256, ge=1, le=1 << 30, description="memory it may use, MiB")
    gpu: int = Field(default=0, ge=0, le=64, description="whole GPUs")


class Gates(BaseModel):
    """Conditions checked on the kit before a job starts; a job waits while one fails."""

    min_battery_percent: float | None = Field(default=None, ge=0, le=100,
                                              description="on battery, start only above this")
    max_temperature_c: float | None = Field(default=None, ge=-50, le=200,
                                            description="start only while the hottest sensor is below")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ModelParams(_Params):
    model: str = Field(pattern=NAME_PATTERN, description="a deployed model's name")
    version: str | None = Field(default=None, pattern=VERSION_PATTERN,
                                description="a version; the serving one when empty")


def _one_input(folder: str | None, dataset: str | None, what: str) -> None:
    if (folder is None) == (dataset is None):
        raise ValueError(f"give exactly one of folder or dataset for the {what}")


class BatchInferParams(_ModelParams):
    folder: str | None = Field(default=None, max_length=4096,
                               description="images under one of the kit's data roots")
    dataset: str | None = Field(default=None, pattern=NAME_PATTERN,
                                description="an uploaded dataset (POST /v1/datasets/{name})")
    top_k: int = Field(default=5, ge=1, le=100)

    @model_validator(mode="after")
    def _input(self) -> BatchInferParams:
        _one_input(self.folder, self.dataset, "images")
        return self


class BenchmarkParams(_ModelParams):
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1, max_length=8)
    threads: list[int] = Field(default_factory=list, max_length=8,
                               description="intra-op thread counts; empty = the job's threads")
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
    folder: str | None = Field(default=None, max_length=4096,
                               description="one sub-folder per label, named as the model's labels")
    dataset: str | None = Field(default=None, pattern=NAME_PATTERN)

    @model_validator(mode="after")
    def _input(self) -> EvaluateParams:
        _one_input(self.folder, self.dataset, "labelled set")
        return self


class QuantizeParams(_ModelParams):
    output_version: str | None = Field(default=None, pattern=VERSION_PATTERN,
                                       description="version of the INT8 model; default <version>-int8")
    per_channel: bool = False
    install: bool = Field(default=True, description="install the result as a new (inactive) version")


class CommandParams(_Params):
    argv: list[str] = Field(min_length=1, max_length=256,
                            description="program and arguments; run without a shell")

    @model_validator(mode="after")
    def _sizes(self) -> CommandParams:
        if any(len(arg) > 4096 or "\0" in arg for arg in self.argv):
            raise ValueError("each argument must be at most 4096 characters, without NUL")
        return self


StreamKeep = Literal["detections", "counts", "snapshots"]
STREAM_KEEP: tuple[StreamKeep, ...] = ("detections", "counts", "snapshots")


class StreamParams(_ModelParams):
    """Continuous inference on a camera, stream, video file or watched folder."""

    source: str = Field(min_length=1, max_length=4096,
                        description="/dev/videoN, rtsp://, http(s):// URL, or a video file or image "
                                    "folder under one of the kit's data roots")
    fps: float | None = Field(default=None, gt=0, le=240,
                              description="frames to process per second at most; empty = as the source gives")
    keep: list[StreamKeep] = Field(default_factory=lambda: list(STREAM_KEEP), max_length=3,
                                   description="what to store on the kit")
    interval_s: float = Field(default=10.0, ge=1, le=3600, description="counts per label per interval")
    max_snapshots: int = Field(default=50, ge=0, le=10000, description="annotated frames kept, newest")
    realtime: bool = Field(default=True, description="read a file or folder at the pace of a camera, "
                                                     "dropping frames; false processes every one")
    loop: bool = Field(default=False, description="start a video file again when it ends")


PARAMS_BY_KIND: dict[str, type[BaseModel]] = {
    "batch-infer": BatchInferParams, "benchmark": BenchmarkParams, "evaluate": EvaluateParams,
    "quantize": QuantizeParams, "command": CommandParams, "stream": StreamParams,
}


def _params_schema(schema: dict[str, Any]) -> None:
    """Document each kind's parameters in OpenAPI, so a client or fuzzer sees the real shapes."""
    schema["anyOf"] = [{**model.model_json_schema(), "title": f"{kind} params"}
                       for kind, model in PARAMS_BY_KIND.items()]


class JobRequest(BaseModel):
    """A job to queue. `params` are checked against the kind's parameter model."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    params: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_params_schema,
                                   description="the kind's parameters (one of the schemas listed)")
    priority: int = Field(default=0, ge=-100, le=100, description="higher starts first")
    resources: Resources = Field(default_factory=Resources)
    timeout_s: float = Field(default=3600.0, gt=0, le=7 * 86400, description="per attempt")
    max_retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_s: float = Field(default=30.0, ge=0, le=86400,
                                   description="first retry delay; doubles on each retry")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128,
                                        description="the same key twice is the same job")
    not_before: float | None = Field(default=None, ge=0, description="Unix time")
    window: str | None = Field(default=None, pattern=WINDOW_PATTERN,
                               description="HH:MM-HH:MM on the kit's clock, may wrap midnight")
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
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
                     for err in exc.errors()[:5])


class JobProgress(BaseModel):
    done: int = 0
    total: int | None = None


class JobInfo(BaseModel):
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


class JobLogs(BaseModel):
    job_id: str
    offset: int
    next_offset: int
    text: str
    finished: bool = Field(description="the job has finished: no more lines will come")


class ResultFile(BaseModel):
    name: str
    size: int


class JobResults(BaseModel):
    job_id: str
    state: JobState
    result: dict[str, Any] | None
    files: list[ResultFile]
    expires_at: float | None = Field(default=None, description="when results are deleted if not collected")


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlainText = Field(min_length=1, max_length=100)
    cron: str = Field(min_length=1, max_length=200,
                      description="5 fields (minute hour day month weekday), or 6 with seconds last")
    job: JobRequest
    missed: MissedRuns = Field(default="skip",
                               description="runs missed while the agent was down: skip, or run once")
    enabled: bool = True

    @model_validator(mode="after")
    def _plain_job_label(self) -> ScheduleRequest:
        _plain_label(self.job)
        return self


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=200)
    missed: MissedRuns | None = None
    enabled: bool | None = None


class ScheduleInfo(BaseModel):
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


class DatasetInfo(BaseModel):
    name: str
    files: int
    size: int


# --- audit --------------------------------------------------------------------

AUDIT_GENESIS = "0" * 64  # prev_hash of the first entry
# The kit's own entries about its log: the first entry of each segment after the first (saying
# from which entry the log is kept), and the count of refusals collapsed into one entry.
AUDIT_SEGMENT = "audit.segment"
AUDIT_REFUSALS = "audit.refusals"
# The calls each kit records in its audit log, and under which action: the app names its own
# log's entries from the same table, so the two logs speak of the same things.
AUDITED_CALLS: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/pair", "kit.adopt"),
    ("DELETE", "/v1/tokens/{token_id}", "token.revoke"),
    ("POST", "/v1/uploads", "model.upload"),
    ("DELETE", "/v1/uploads/{upload_id}", "model.upload_abort"),
    ("POST", "/v1/uploads/{upload_id}/commit", "model.deploy"),
    ("POST", "/v1/models/{name}/activate", "model.activate"),
    ("POST", "/v1/models/{name}/rollback", "model.rollback"),
    ("DELETE", "/v1/models/{name}/versions/{version}", "model.delete"),
    ("POST", "/v1/jobs", "job.submit"),
    ("POST", "/v1/jobs/{job_id}/cancel", "job.cancel"),
    ("DELETE", "/v1/jobs/{job_id}", "job.delete"),
    ("PUT", "/v1/datasets/{name}", "dataset.upload"),
    ("DELETE", "/v1/datasets/{name}", "dataset.delete"),
    ("POST", "/v1/schedules", "schedule.create"),
    ("PATCH", "/v1/schedules/{schedule_id}", "schedule.update"),
    ("DELETE", "/v1/schedules/{schedule_id}", "schedule.delete"),
)
_AUDITED = tuple(
    (method, re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"), action)
    for method, path, action in AUDITED_CALLS)


def audited_call(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The audit action of a call and its path parameters, or None when it is not audited."""
    for wanted, pattern, action in _AUDITED:
        if wanted == method and (match := pattern.match(path)):
            return action, match.groupdict()
    return None


def audit_subject(action: str, params: dict[str, str], request: Any, response: Any
                  ) -> tuple[str, dict[str, Any]]:
    """What a call acted on (the target) and the few facts worth keeping, from its bodies."""
    ask: dict[str, Any] = request if isinstance(request, dict) else {}
    got: dict[str, Any] = response if isinstance(response, dict) else {}
    manifest: dict[str, Any] = ask["manifest"] if isinstance(ask.get("manifest"), dict) else {}
    job: dict[str, Any] = ask["job"] if isinstance(ask.get("job"), dict) else ask
    params_of_job = job.get("params")
    job_params: dict[str, Any] = params_of_job if isinstance(params_of_job, dict) else {}
    picks: dict[str, Any] = {
        "kit.adopt": {"scope": ask.get("scope"), "app_id": ask.get("app_id")},
        "model.upload": {k: manifest.get(k) for k in ("sha256", "precision", "size_bytes")}
        | {"activate": ask.get("activate")},
        "model.rollback": {"active_version": got.get("active_version")},
        "model.deploy": {"model": got.get("name"), "active_version": got.get("active_version")},
        "job.submit": {"kind": job.get("kind"), "label": job.get("label"),
                       "model": job_params.get("model")},
        "schedule.create": {"name": ask.get("name"), "cron": ask.get("cron"), "kind": job.get("kind")},
        "schedule.update": {k: ask.get(k) for k in ("cron", "enabled", "missed")},
    }
    detail = {k: v for k, v in picks.get(action, {}).items() if v is not None}
    target = {
        "kit.adopt": got.get("token_id", ""),
        "model.upload": _words(manifest.get("name"), manifest.get("version")),
        "model.deploy": _newest_version(got),
        "model.activate": _words(params.get("name"), ask.get("version")),
        "job.submit": got.get("job_id", ""),
        "schedule.create": got.get("schedule_id", ""),
    }.get(action) or " ".join(params.values())
    return str(target), detail


def _words(*values: Any) -> str:
    """The string values joined by spaces: a refused body may hold anything where a name goes."""
    return " ".join(v for v in values if isinstance(v, str) and v)


def _newest_version(info: dict[str, Any]) -> str:
    """`name version` of the version a commit just installed: the newest in its ModelInfo."""
    versions = [v for v in info.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        return ""
    newest = max(versions, key=lambda v: v.get("installed_at") or 0)
    return f"{info.get('name', '')} {newest.get('version', '')}"


class AuditEntry(BaseModel):
    """One line of a kit's append-only audit log; `hash` chains it to the line before."""

    seq: int = Field(ge=1, description="1, 2, 3… without gaps from the first entry kept (the "
                     "oldest segments are dropped to bound the log: GET /v1/audit/verify)")
    ts: float
    actor_id: str = Field(description="the caller's token id; empty when none was shown")
    actor_label: str = Field(description="the app identity the token was issued to")
    action: str = Field(description="kit.adopt, model.deploy, job.submit… (AUDITED_CALLS)")
    target: str
    outcome: str = Field(description="ok, or the status and error code of a refusal")
    detail: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(pattern="^[0-9a-f]{64}$")
    hash: str = Field(pattern="^[0-9a-f]{64}$")

    def expected_hash(self) -> str:
        return audit_hash(self.prev_hash, self.seq, self.ts, self.actor_id, self.actor_label,
                          self.action, self.target, self.outcome, self.detail)


def audit_hash(prev_hash: str, seq: int, ts: float, actor_id: str, actor_label: str, action: str,
               target: str, outcome: str, detail: dict[str, Any]) -> str:
    """sha256 over the previous hash and the entry's canonical JSON: changing any field, or
    removing or reordering entries, breaks every hash after it."""
    canonical = json.dumps(
        {"seq": seq, "ts": ts, "actor_id": actor_id, "actor_label": actor_label, "action": action,
         "target": target, "outcome": outcome, "detail": detail},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}|{canonical}".encode()).hexdigest()


def verify_chain(entries: list[AuditEntry], prev_hash: str | None, prev_seq: int = 0) -> list[str]:
    """Every break in `entries` (oldest first), continuing from `prev_hash` at `prev_seq`.

    `prev_hash` None trusts the first entry's link (a log read from its middle); an empty list
    back means the chain is whole.
    """
    problems: list[str] = []
    for entry in entries:
        if entry.seq != prev_seq + 1:
            problems.append(f"entry {entry.seq} follows {prev_seq}: entries are missing")
        if prev_hash is not None and entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq} does not link to the entry before it")
        if entry.hash != entry.expected_hash():
            problems.append(f"entry {entry.seq} was altered after it was written")
        prev_hash, prev_seq = entry.hash, entry.seq
    return problems


class ChainCheck:
    """Checks a log read oldest first from its first kept entry, in as many parts as it comes.

    A kit drops its oldest segments to bound its log. What is kept still verifies: its first
    entry starts a segment and links to the hash of the last entry dropped, and the newest
    segment entry (inside the chain, so covered by every hash after it) names that first
    entry and that hash. A log cut anywhere else, or cut further than its segment entry says,
    is a break.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.kept_from = 0  # the first entry's seq; 1 when nothing was dropped
        self.last: AuditEntry | None = None
        self._first: AuditEntry | None = None
        self._says: dict[str, Any] | None = None  # the newest segment entry's detail

    def add(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        if self._first is None:
            self._first, self.kept_from = entries[0], entries[0].seq
            prev_hash, prev_seq = (AUDIT_GENESIS, 0) if self.kept_from == 1 else (
                entries[0].prev_hash, self.kept_from - 1)
            if self.kept_from > 1 and entries[0].action != AUDIT_SEGMENT:
                self.problems.append(f"the log starts at entry {self.kept_from}, which does not "
                                     "start a segment: entries are missing before it")
        else:
            assert self.last is not None
            prev_hash, prev_seq = self.last.hash, self.last.seq
        self.problems += verify_chain(entries, prev_hash, prev_seq)
        self._says = next((e.detail for e in reversed(entries) if e.action == AUDIT_SEGMENT),
                          self._says)
        self.last = entries[-1]

    def finish(self) -> list[str]:
        """Every problem found, once the whole kept log was added."""
        first, says = self._first, self._says
        if first is not None and (self.kept_from > 1 or says is not None):
            said = says.get("kept_from") if says else 1
            if said != self.kept_from or (says and says.get("dropped_hash") != first.prev_hash):
                self.problems.append(f"the log starts at entry {self.kept_from}, but its last "
                                     f"segment entry says it keeps entries from {said}")
        return self.problems

    def describe(self) -> str:
        """Where the kept chain starts, in words; empty when nothing was dropped."""
        if self.kept_from <= 1:
            return ""
        return (f"kept from entry {self.kept_from} on (entries 1-{self.kept_from - 1} were "
                "rotated out to bound the log's size)")
