"""Reliability lab, scenario 12: schema fuzzing of the agent's own OpenAPI with schemathesis.

A real agent on loopback serves the bundled digits-cnn model; the fuzzer holds an admin token
(paired like the app pairs) and reads the schema from the agent's `/v1/openapi.json`. Every TLS
connection is pinned to the certificate in the agent's data dir (its SHA-256 is the device ID).

1. Stateless: every operation, with schema-valid (positive) and schema-breaking (negative)
   input, at least 1,000 cases in all: no 5xx, every status code documented, every body
   (2xx and the {error, message, hint} refusals) matching its declared schema and media type.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
from hypothesis import HealthCheck, Phase, settings
from requests.adapters import HTTPAdapter

from agent.api.schemas import device_id_from_der
from app.fleet.localagent import LocalAgent
from tests.integration.helpers import pair

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

from schemathesis import Case  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.hypothesis.builder import (  # noqa: E402
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import REQUESTS_TRANSPORT, binary_serializer  # noqa: E402

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "resources" / "models"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance]
EXCLUDED = ("DELETE /v1/tokens/{token_id}",)
STATEFUL_EXCLUDED = (*EXCLUDED, "GET /v1/jobs/{job_id}/live")
FUZZ_EXAMPLES = 12  # per operation, after its coverage cases
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck))
MIN_CASES = 1000
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


@dataclass
class Target:
    agent: LocalAgent
    base_url: str
    session: requests.Session
    cases: dict[str, int] = field(default_factory=dict)  # per operation


def _pinned_session(agent: LocalAgent, token: str) -> requests.Session:
    import ssl

    pem = (agent.data_dir / "identity.crt").read_text()
    session = requests.Session()
    session.mount("https://", PinnedAdapter(device_id_from_der(ssl.PEM_cert_to_DER_cert(pem))))
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _deploy_digits(session: requests.Session, base_url: str) -> None:
    manifest = json.loads((MODELS / "digits-cnn-fp32.manifest.json").read_text())
    data = (MODELS / "digits-cnn-fp32.onnx").read_bytes()
    upload = session.post(f"{base_url}/v1/uploads", json={"manifest": manifest, "activate": True},
                          timeout=30)
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["upload_id"]
    for offset in range(0, len(data), CHUNK):
        sent = session.patch(f"{base_url}/v1/uploads/{upload_id}", data=data[offset:offset + CHUNK],
                             headers={"Upload-Offset": str(offset),
                                      "Content-Type": "application/octet-stream"}, timeout=30)
        assert sent.status_code == 200, sent.text
    commit = session.post(f"{base_url}/v1/uploads/{upload_id}/commit", timeout=60)
    assert commit.status_code == 200, commit.text
    assert commit.json()["active_version"] == manifest["version"]


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
    unauthenticated = target.session.get(f"{target.base_url}/v1/openapi.json",
                                         headers={"Authorization": ""}, timeout=10)
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


def _fuzz_call(target: Target, case: Case[Any]) -> None:
    hypothesis.assume(not _names_a_url(case))
    response = case.call(session=target.session, timeout=15)
    label = _label(case)
    target.cases[label] = target.cases.get(label, 0) + 1
    case.validate_response(response, checks=CHECKS)


def _describe(exc: BaseException) -> str:
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())  # an exception group
    message = str(getattr(exc, "message", exc))
    if inner and "curl" not in message:  # schemathesis's own message holds the curl to reproduce
        return "; ".join(map(_describe, inner))
    return message


def test_every_operation_fuzzed_answers_as_documented(target: Target, schema: Any) -> None:
    """Positive and negative cases for every operation: no 5xx, responses as the schema says."""
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    tested = [op for op in operations if f"{op.method.upper()} {op.path}" not in EXCLUDED]
    assert len(tested) >= 35, [op.label for op in operations]
    failures: list[str] = []
    for operation in tested:

        def fuzz(case: Case[Any]) -> None:
            _fuzz_call(target, case)

        # The builder behind schemathesis's pytest plugin: schema examples, then its coverage
        # phase (boundary values, every field of the wrong type or missing, ...), then
        # Hypothesis fuzzing, each in positive and negative mode.
        test = create_test(operation=operation, test_func=fuzz, config=HypothesisTestConfig(
            project=schema.config, modes=list(HypothesisTestMode), settings=SETTINGS))
        try:
            test()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing generated that could be sent (e.g. every case named a URL)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every operation's failure (groups too), not the first only
            failures.append(f"{operation.method.upper()} {operation.path}: {_describe(exc)}")
    total = sum(target.cases.values())
    counts = ", ".join(f"{label} {n}" for label, n in sorted(target.cases.items()))
    print(f"\nfuzzed {total} cases over {len(target.cases)} operations in "
          f"{time.monotonic() - started:.1f} s: {counts}")
    assert failures == [], "\n\n".join(failures)
    assert total >= MIN_CASES
    assert {f"{op.method.upper()} {op.path}" for op in tested} <= set(target.cases)
    assert target.agent.process is not None
    assert target.agent.process.poll() is None  # the agent never fell over


def test_stateful_sequences_along_links_answer_as_documented(target: Target, schema: Any) -> None:
    """Sequences built from the schema's (inferred) links, each step checked like above."""
    stateful = schema.exclude(func=lambda ctx: f"{ctx.operation.method.upper()} {ctx.operation.path}"
                              in STATEFUL_EXCLUDED)
    steps: list[str] = []

    class Machine(stateful.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"session": target.session, "timeout": 15}

        def call(self, case: Case[Any], **kwargs: Any) -> Any:
            hypothesis.assume(not _names_a_url(case))
            steps.append(_label(case))
            return case.call(**kwargs)

        def validate_response(self, response: Any, case: Case[Any],
                              additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    started = time.monotonic()
    Machine.run(settings=settings(max_examples=STATEFUL_SCENARIOS, derandomize=True, deadline=None,
                                  database=None, stateful_step_count=6,
                                  suppress_health_check=list(HealthCheck)))
    print(f"\nstateful: {len(steps)} calls over {len(set(steps))} operations in "
          f"{time.monotonic() - started:.1f} s: {sorted(set(steps))}")
    assert len(steps) >= STATEFUL_SCENARIOS
    assert target.agent.process is not None
    assert target.agent.process.poll() is None  # the agent never fell over
