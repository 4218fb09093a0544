"""Reliability lab, scenario 12: schema fuzzing of the agent's own OpenAPI with schemathesis.

A real agent on loopback serves the bundled digits-cnn model; the fuzzer holds an admin token
(paired like the app pairs) and reads the schema from the agent's `/v1/openapi.json`. Every TLS
connection is pinned to the certificate in the agent's data dir (its SHA-256 is the device ID).
Beside the model the kit holds a real dataset, a finished batch-infer job with its log and
results, a schedule and an upload under way.

1. Stateless: every operation, with schema-valid (positive) and schema-breaking (negative)
   input, at least 1,000 cases in all: no 5xx, every status code documented, every body
   (2xx and the {error, message, hint} refusals) matching its declared schema and media type.
   Then every operation again with its path naming the real model, version, job, dataset,
   schedule and upload (recreated before each operation when an earlier one deleted them),
   so queries and bodies are fuzzed against things that exist, not only against 404s:
   at least 2,000 cases over both runs.
2. Stateful: sequences along the links schemathesis infers from the schema (POST /v1/uploads ->
   GET/PATCH/DELETE /v1/uploads/{upload_id}, GET /v1/models -> /v1/models/{name}/..., POST
   /v1/jobs -> /v1/jobs/{job_id}/..., ...), with the same checks at each step.

Left out, because they would break the fuzzing itself:
- DELETE /v1/tokens/{token_id}: the stateful run would revoke the fuzzer's own token
  (GET /v1/tokens hands it the id); revocation is covered in tests/integration.
- GET /v1/jobs/{job_id}/live, in the stateful run only: on a real stream job it is an endless
  Server-Sent Events stream (a stateless case only ever names an unknown job: 404).
- Request bodies naming a URL (`://`) are skipped: a stream job must never reach out of loopback.
The agent has no identity-regeneration route; `command` jobs are off (no allowed programs).
DELETE /v1/models/{name}/versions/{version} stays in: the stateful run (last) may delete the model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
from hypothesis import HealthCheck, Phase, settings
from requests.adapters import HTTPAdapter

from agent.wire import device_id_from_der
from app.fleet.localagent import LocalAgent
from tests.integration.helpers import pair, tar_archive
from tests.integration.test_jobs_api import images

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

from schemathesis import Case  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.hypothesis.builder import (  # noqa: E402
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.generation.overrides import Override  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import REQUESTS_TRANSPORT, binary_serializer  # noqa: E402

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "resources" / "models"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXCLUDED = ("DELETE /v1/tokens/{token_id}",)
STATEFUL_EXCLUDED = (*EXCLUDED, "GET /v1/jobs/{job_id}/live")
FUZZ_EXAMPLES = 12  # per operation, after its coverage cases
SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
MIN_CASES = 1000
MIN_CASES_IN_ALL = 2000  # both stateless runs, random ids and real ones
STATEFUL_SCENARIOS = 60
CHUNK = 256 * 1024  # the model goes up in resumable pieces: PATCH at each Upload-Offset

# The dataset route takes a raw tar; schemathesis knows no serializer for that media type.
REQUESTS_TRANSPORT.serializer("application/x-tar")(binary_serializer)


class PinnedAdapter(HTTPAdapter):
    """Accept exactly the certificate whose SHA-256 is `fingerprint` (the agent's device ID).

    The agent's self-signed certificate names no host, so instead of CA and host-name checks
    every connection's certificate is compared with the one in the agent's data dir."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = False  # no CA would vouch for it; the fingerprint pin decides instead
        return super().send(request, *args, **kwargs)


MODEL, VERSION, DATASET = "digits-cnn", "1.0", "fuzzset"


@dataclass
class Target:
    agent: LocalAgent
    base_url: str
    session: requests.Session
    cases: dict[str, int] = field(default_factory=dict)  # per operation
    real_cases: dict[str, int] = field(default_factory=dict)  # per operation, with real ids
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> a real one
    answered: dict[str, int] = field(default_factory=dict)  # 2xx per operation, with real ids


def _pinned_session(agent: LocalAgent, token: str) -> requests.Session:
    import ssl

    pem = (agent.data_dir / "identity.crt").read_text()
    session = requests.Session()
    session.mount("https://", PinnedAdapter(device_id_from_der(ssl.PEM_cert_to_DER_cert(pem))))
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _manifest() -> dict[str, Any]:
    return dict(json.loads((MODELS / "digits-cnn-fp32.manifest.json").read_text()))


def _deploy_digits(session: requests.Session, base_url: str) -> None:
    manifest = _manifest()
    data = (MODELS / "digits-cnn-fp32.onnx").read_bytes()
    upload = session.post(f"{base_url}/v1/uploads", json={"manifest": manifest, "activate": True}, timeout=30)
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["upload_id"]
    for offset in range(0, len(data), CHUNK):
        sent = session.patch(
            f"{base_url}/v1/uploads/{upload_id}",
            data=data[offset : offset + CHUNK],
            headers={"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
    commit = session.post(f"{base_url}/v1/uploads/{upload_id}/commit", timeout=60)
    assert commit.status_code == 200, commit.text
    assert commit.json()["active_version"] == manifest["version"]


def _made(response: requests.Response, key: str = "") -> str:
    assert response.status_code in (200, 201), response.text
    return str(response.json()[key]) if key else ""


def _ensure_real(target: Target, images_dir: Path) -> None:
    """Make sure the model, dataset, a finished job, a schedule and an upload under way exist,
    remaking what an earlier operation deleted; their ids go in `target.ids`."""
    session, url = target.session, target.base_url
    if session.get(f"{url}/v1/models/{MODEL}", timeout=10).status_code != 200:
        _deploy_digits(session, url)
    if not any(d["name"] == DATASET for d in session.get(f"{url}/v1/datasets", timeout=10).json()):
        members = {p.name: p.read_bytes() for p in sorted(images_dir.glob("*.png"))}
        _made(
            session.put(
                f"{url}/v1/datasets/{DATASET}",
                data=tar_archive(members),
                headers={"Content-Type": "application/x-tar"},
                timeout=30,
            )
        )
    job_id = target.ids.get("job_id", "")
    if not job_id or session.get(f"{url}/v1/jobs/{job_id}", timeout=10).status_code != 200:
        job_id = _made(
            session.post(
                f"{url}/v1/jobs",
                json={"kind": "batch-infer", "params": {"model": MODEL, "dataset": DATASET}},
                timeout=10,
            ),
            "job_id",
        )
        deadline = time.monotonic() + 60
        while session.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the batch-infer job did not finish"
            time.sleep(0.1)
    schedule_id = target.ids.get("schedule_id", "")
    if not schedule_id or session.get(f"{url}/v1/schedules/{schedule_id}", timeout=10).status_code != 200:
        schedule_id = _made(
            session.post(
                f"{url}/v1/schedules",
                json={
                    "name": "nightly",
                    "cron": "0 3 * * *",
                    "enabled": False,
                    "job": {"kind": "benchmark", "params": {"model": MODEL}},
                },
                timeout=10,
            ),
            "schedule_id",
        )
    upload_id = target.ids.get("upload_id", "")
    if not upload_id or session.get(f"{url}/v1/uploads/{upload_id}", timeout=10).status_code != 200:
        pending = {**_manifest(), "version": "2.0"}  # 1.0 is installed: nothing to upload
        upload_id = _made(
            session.post(f"{url}/v1/uploads", json={"manifest": pending}, timeout=10), "upload_id"
        )
    target.ids.update(job_id=job_id, schedule_id=schedule_id, upload_id=upload_id)


def _real_parameters(target: Target, path: str) -> dict[str, str]:
    """Path parameters naming real things, for an operation on `path`."""
    names = {"/v1/models/": MODEL, "/v1/datasets/": DATASET, "/results/": "results.jsonl"}
    real = {key: value for key, value in target.ids.items() if "{" + key + "}" in path}
    if "{version}" in path:
        real["version"] = VERSION
    name = next((value for part, value in names.items() if part in path), None)
    if "{name}" in path and name is not None:
        real["name"] = name
    return real


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    agent = LocalAgent(tmp_path_factory.mktemp("fuzz") / "kit", "fuzzkit", mdns=False)
    agent.start()
    try:
        base_url = f"https://{agent.address}"
        session = _pinned_session(agent, pair(agent, "admin"))
        with pytest.raises(requests.exceptions.SSLError):  # the pin really is checked
            _pinned_session_with(agent, "0" * 64).get(f"{base_url}/v1/health", timeout=10)
        _deploy_digits(session, base_url)
        yield Target(agent, base_url, session)
        session.close()
    finally:
        agent.stop()


def _pinned_session_with(agent: LocalAgent, fingerprint: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", PinnedAdapter(fingerprint))
    return session


@pytest.fixture(scope="module")
def schema(target: Target) -> Any:
    unauthenticated = target.session.get(
        f"{target.base_url}/v1/openapi.json", headers={"Authorization": ""}, timeout=10
    )
    assert unauthenticated.status_code == 401
    document = target.session.get(f"{target.base_url}/v1/openapi.json", timeout=10)
    assert document.status_code == 200, document.text
    loaded = schemathesis.openapi.from_dict(document.json())
    loaded.config.update(base_url=target.base_url)
    return loaded


def _label(case: Case[Any]) -> str:
    return f"{case.operation.method.upper()} {case.operation.path}"


def _names_a_url(case: Case[Any]) -> bool:
    try:
        return "://" in json.dumps(case.body, default=repr)
    except (TypeError, ValueError):
        return False


def _fuzz_call(target: Target, case: Case[Any], counts: dict[str, int], fixed: dict[str, str]) -> None:
    hypothesis.assume(not _names_a_url(case))
    # a negative case may still break a fixed path parameter (e.g. empty): the run on random
    # ids covers those; this one sends only paths that name the real things
    hypothesis.assume(all((case.path_parameters or {}).get(k) == v for k, v in fixed.items()))
    response = case.call(session=target.session, timeout=15)
    label = _label(case)
    counts[label] = counts.get(label, 0) + 1
    if counts is target.real_cases and response.status_code < 300:
        target.answered[label] = target.answered.get(label, 0) + 1
    case.validate_response(response, checks=CHECKS)


def _describe(exc: BaseException) -> str:
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())  # an exception group
    message = str(getattr(exc, "message", exc))
    if inner and "curl" not in message:  # schemathesis's own message holds the curl to reproduce
        return "; ".join(map(_describe, inner))
    return message


def _fuzz(
    target: Target,
    schema: Any,
    operations: list[Any],
    counts: dict[str, int],
    path_of: Callable[[Any], dict[str, str]] = lambda _: {},
) -> list[str]:
    """Fuzz each operation, with the path parameters `path_of(operation)` fixed; every
    operation's failures, described."""
    failures: list[str] = []
    for operation in operations:
        real = path_of(operation)

        def fuzz(case: Case[Any]) -> None:
            _fuzz_call(target, case, counts, real)  # noqa: B023 - run within this iteration

        # The builder behind schemathesis's pytest plugin: schema examples, then its coverage
        # phase (boundary values, every field of the wrong type or missing, ...), then
        # Hypothesis fuzzing, each in positive and negative mode.
        test = create_test(
            operation=operation,
            test_func=fuzz,
            config=HypothesisTestConfig(
                project=schema.config,
                modes=list(HypothesisTestMode),
                settings=SETTINGS,
                override=Override(path_parameters=real),
            ),
        )
        try:
            test()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing generated that could be sent (e.g. every case named a URL)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every operation's failure (groups too), not the first only
            failures.append(f"{operation.method.upper()} {operation.path}: {_describe(exc)}")
    return failures


def _tested(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    tested = [op for op in operations if f"{op.method.upper()} {op.path}" not in EXCLUDED]
    assert len(tested) >= 35, [op.label for op in operations]
    return tested


def _report(what: str, counts: dict[str, int], started: float) -> None:
    listed = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    print(
        f"\n{what}: {sum(counts.values())} cases over {len(counts)} operations in "
        f"{time.monotonic() - started:.1f} s: {listed}"
    )


def test_every_operation_fuzzed_answers_as_documented(target: Target, schema: Any) -> None:
    """Positive and negative cases for every operation: no 5xx, responses as the schema says."""
    started = time.monotonic()
    tested = _tested(schema)
    failures = _fuzz(target, schema, tested, target.cases)
    _report("fuzzed", target.cases, started)
    assert failures == [], "\n\n".join(failures)
    assert sum(target.cases.values()) >= MIN_CASES
    assert {f"{op.method.upper()} {op.path}" for op in tested} <= set(target.cases)
    assert target.agent.process is not None
    assert target.agent.process.poll() is None  # the agent never fell over


def test_every_operation_fuzzed_on_real_ids_answers_as_documented(
    target: Target, schema: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same, each path naming the real model, job, dataset, schedule or upload."""
    pictures = tmp_path_factory.mktemp("pictures")
    images(pictures, 4)
    started = time.monotonic()
    tested = _tested(schema)

    def real_ids(operation: Any) -> dict[str, str]:
        _ensure_real(target, pictures)
        return _real_parameters(target, operation.path)

    failures = _fuzz(target, schema, tested, target.real_cases, real_ids)
    _report("fuzzed on real ids", target.real_cases, started)
    assert failures == [], "\n\n".join(failures)
    assert sum(target.real_cases.values()) >= MIN_CASES
    if target.cases:  # after the run on random ids (not when this test is run alone)
        assert sum(target.cases.values()) + sum(target.real_cases.values()) >= MIN_CASES_IN_ALL
    assert {f"{op.method.upper()} {op.path}" for op in tested} <= set(target.real_cases)
    found = {
        "GET /v1/jobs/{job_id}",
        "GET /v1/jobs/{job_id}/logs",
        "GET /v1/schedules/{schedule_id}",
        "GET /v1/models/{name}",
        "GET /v1/uploads/{upload_id}",
        "GET /v1/jobs/{job_id}/results",
    }
    assert found <= set(target.answered), f"the real ids were used: {target.answered}"
    assert target.agent.process is not None
    assert target.agent.process.poll() is None


def test_stateful_sequences_along_links_answer_as_documented(target: Target, schema: Any) -> None:
    """Sequences built from the schema's (inferred) links, each step checked like above."""
    stateful = schema.exclude(
        func=lambda ctx: f"{ctx.operation.method.upper()} {ctx.operation.path}" in STATEFUL_EXCLUDED
    )
    steps: list[str] = []

    class Machine(stateful.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"session": target.session, "timeout": 15}

        def call(self, case: Case[Any], **kwargs: Any) -> Any:
            hypothesis.assume(not _names_a_url(case))
            steps.append(_label(case))
            return case.call(**kwargs)

        def validate_response(
            self, response: Any, case: Case[Any], additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    started = time.monotonic()
    tripped: Exception | None = None
    try:
        run_machine(Machine)
    except hypothesis.errors.FlakyStrategyDefinition as exc:
        # hypothesis' own consistency check: a link's value is there or not as the live agent's
        # state moved on, so one prefix drew a boolean once and a string the next time. It is
        # raised while drawing, before any call of that case, so no agent failure hides behind it.
        tripped = exc
    print(
        f"\nstateful: {len(steps)} calls over {len(set(steps))} operations in "
        f"{time.monotonic() - started:.1f} s: {sorted(set(steps))}"
    )
    assert target.agent.process is not None
    assert target.agent.process.poll() is None  # the agent never fell over
    if tripped is not None:
        first_line = str(tripped).splitlines()[0]
        pytest.skip(f"hypothesis' data-consistency check tripped after {len(steps)} calls: {first_line}")
    assert len(steps) >= STATEFUL_SCENARIOS


def run_machine(machine: Any) -> None:
    machine.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            derandomize=True,
            # no shrinking: replays against a live agent whose state moved on draw differently,
            # and hypothesis then reports FlakyStrategyDefinition instead of the failure it found
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            database=None,
            stateful_step_count=6,
            suppress_health_check=list(HealthCheck),
        )
    )
