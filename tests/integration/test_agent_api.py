"""The agent's HTTPS API against a real agent process."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from agent.wire import Facts
from app.fleet.localagent import LocalAgent
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import device_id, pair, pair_body, raw_client
from tests.unit.agent.test_facts_models import extra_keys

PROTECTED = [
    ("GET", "/v1/facts"),
    ("GET", "/v1/metrics"),
    ("GET", "/metrics"),
    ("GET", "/v1/tokens"),
    ("DELETE", "/v1/tokens/abc"),
    ("GET", "/v1/openapi.json"),
]


def test_health_is_public_and_names_the_certificate(start_agent: AgentFactory) -> None:
    agent = start_agent("health", mdns=False)
    with raw_client(agent) as client:
        body = client.get("/v1/health").json()
    assert body["status"] == "ok"
    assert body["api_version"] == "1"
    assert body["device_id"] == device_id(agent)
    assert agent.run_cli("identity").strip() == body["device_id"]


def test_port_zero_writes_the_chosen_port_to_data_dir_and_log(start_agent: AgentFactory) -> None:
    agent = start_agent("port", mdns=False)
    assert int((agent.data_dir / "agent.port").read_text()) == agent.port > 0
    assert f"127.0.0.1:{agent.port}" in (agent.data_dir / "agent.log").read_text()


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_other_route_needs_a_valid_token(start_agent: AgentFactory, method: str, path: str) -> None:
    agent = start_agent("auth", mdns=False)
    with raw_client(agent) as anonymous, raw_client(agent, "kft_not-a-token") as wrong:
        for client in (anonymous, wrong):
            response = client.request(method, path)
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["message"]


def test_scopes_and_revocation(start_agent: AgentFactory) -> None:
    agent = start_agent("scopes", mdns=False)
    admin, viewer = pair(agent, "admin"), pair(agent, "viewer")
    with raw_client(agent, viewer) as as_viewer, raw_client(agent, admin) as as_admin:
        assert as_viewer.get("/v1/facts").status_code == 200
        assert as_viewer.get("/v1/tokens").status_code == 403
        tokens = as_admin.get("/v1/tokens").json()
        assert {t["scope"] for t in tokens} == {"admin", "viewer"}
        assert all("hash" not in t and "token" not in t for t in tokens)
        viewer_id = next(t["token_id"] for t in tokens if t["scope"] == "viewer")
        assert as_admin.delete(f"/v1/tokens/{viewer_id}").status_code == 204
        assert as_viewer.get("/v1/facts").status_code == 401
        assert as_admin.delete(f"/v1/tokens/{viewer_id}").status_code == 404
    stored = (agent.data_dir / "agent.db").read_bytes()
    assert admin.encode() not in stored
    assert viewer.encode() not in stored


def test_bad_bodies_get_4xx_with_a_message(start_agent: AgentFactory) -> None:
    agent = start_agent("bodies", mdns=False)
    with raw_client(agent) as client:
        malformed = client.post(
            "/v1/pair", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert "JSON" in malformed.json()["message"]
        missing = client.post("/v1/pair", json={"app_id": "x"})
        assert missing.status_code == 422
        assert "proof" in missing.json()["message"]
        huge = client.post("/v1/pair", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
        assert huge.status_code == 413
        assert huge.json()["error"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must still hold
            for _ in range(40):
                yield b"x" * 65536

        streamed = client.post("/v1/pair", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.get("/v1/health").status_code == 200


def test_facts_metrics_and_prometheus(start_agent: AgentFactory) -> None:
    os.environ["KITFLEET_AGENT_METRICS_INTERVAL_S"] = "0.2"
    os.environ["KITFLEET_AGENT_METRICS_CAPACITY"] = "5"
    try:
        agent = start_agent("metrics", mdns=False)
    finally:
        del os.environ["KITFLEET_AGENT_METRICS_INTERVAL_S"]
        del os.environ["KITFLEET_AGENT_METRICS_CAPACITY"]
    token = pair(agent)
    with raw_client(agent, token) as client:
        facts = client.get("/v1/facts").json()
        assert facts["device_id"] == device_id(agent)
        assert facts["families"]["cpu"]["logical_cores"] >= 1
        assert facts["families"]["kit"]["name"] == "metrics"
        typed = Facts.model_validate(facts)  # the contract covers every key the agent sent
        assert extra_keys(typed) == []
        assert typed.families.wire() == facts["families"]
        deadline = time.monotonic() + 20
        samples: list[dict[str, float]] = []
        while time.monotonic() < deadline and len(samples) < 5:
            samples = client.get("/v1/metrics").json()["samples"]
            time.sleep(0.2)
        time.sleep(0.6)  # more samples than the ring holds
        samples = client.get("/v1/metrics").json()["samples"]
        assert len(samples) == 5, "the ring keeps exactly its capacity"
        assert [s["ts"] for s in samples] == sorted(s["ts"] for s in samples)
        assert all(0 <= s["cpu_percent"] <= 100 and 0 < s["memory_percent"] <= 100 for s in samples)
        newer = client.get("/v1/metrics", params={"since": samples[-2]["ts"]}).json()
        assert len(newer["samples"]) >= 1
        assert client.get("/v1/metrics", params={"since": -1}).status_code == 422
        text = client.get("/metrics").text
        assert "# TYPE kitfleet_cpu_percent gauge" in text
        assert f'device_id="{facts["device_id"]}"' in text
        assert client.get("/v1/openapi.json").json()["paths"]["/v1/facts"]


def test_metrics_ring_survives_restart(start_agent: AgentFactory) -> None:
    os.environ["KITFLEET_AGENT_METRICS_INTERVAL_S"] = "0.2"
    try:
        agent = start_agent("restart", mdns=False)
        token = pair(agent)
        time.sleep(1.0)
        agent.stop()
        agent.start()
    finally:
        del os.environ["KITFLEET_AGENT_METRICS_INTERVAL_S"]
    with raw_client(agent, token) as client:
        assert len(client.get("/v1/metrics").json()["samples"]) >= 2


def test_sigterm_stops_cleanly(start_agent: AgentFactory) -> None:
    agent: LocalAgent = start_agent("sigterm", mdns=False)
    assert agent.stop() == 0
    assert "agent stopped cleanly" in (agent.data_dir / "agent.log").read_text()


def test_pairing_proof_for_another_certificate_is_refused(start_agent: AgentFactory) -> None:
    """A man in the middle shows the app its own certificate: the proof cannot verify."""
    agent = start_agent("mitm", mdns=False)
    code = agent.pair_code()
    with raw_client(agent) as client:
        forged = client.post("/v1/pair", json=pair_body(code, "ab" * 32))
        assert forged.status_code == 403
        assert client.post("/v1/pair", json=pair_body(code, device_id(agent))).status_code == 200
