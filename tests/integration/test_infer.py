"""Inference through a real agent: images and tensors in, labels and version out."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.wire import InferResult
from app.fleet.client import RawOutputs
from app.fleet.deploy import async_deploy
from app.fleet.errors import AgentError
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, raw_client
from tests.onnx_models import classifier


@pytest.fixture
def served(start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path):
    agent = start_agent("infer", mdns=False)
    kit = adopt(agent)
    model = tmp_path / "tiny.onnx"
    manifest = classifier(model, version="1")
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert outcome.ok, outcome.message
    return agent, kit, manifest


def _png(size: int = 40, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_gives_ranked_labels_naming_version_and_sha(served, fleet: Fleet) -> None:
    _, kit, manifest = served
    result = asyncio.run(fleet.async_call(kit, lambda c: c.infer("tiny", _png(), "image/png", top_k=3)))
    assert isinstance(result, InferResult)
    assert (result.version, result.sha256) == ("1", manifest.sha256)
    assert len(result.classes or []) == 3
    scores = [c.score for c in result.classes or []]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert {c.label for c in result.classes or []} <= set(manifest.labels)


def test_a_tensor_gives_the_same_answer_as_onnx_runtime_in_process(
    served, fleet: Fleet, tmp_path: Path
) -> None:
    import onnxruntime as ort

    _, kit, _ = served
    tensor = np.random.default_rng(3).random((1, 3, 16, 16)).astype("float32")
    buffer = io.BytesIO()
    np.save(buffer, tensor)
    result = asyncio.run(
        fleet.async_call(kit, lambda c: c.infer("tiny", buffer.getvalue(), "application/x-npy", top_k=4))
    )
    assert isinstance(result, InferResult)
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": tensor})[0][0]
    got = {c.index: c.score for c in result.classes or []}
    assert np.allclose([got[i] for i in range(4)], expected, atol=1e-5)


def test_results_follow_activation(served, fleet: Fleet, tmp_path: Path) -> None:
    _, kit, _ = served
    (tmp_path / "v2").mkdir()
    v2 = tmp_path / "v2" / "tiny.onnx"
    classifier(v2, version="2", seed=9)
    asyncio.run(async_deploy(fleet, v2, [kit], activate=True))
    png = _png()
    latest = asyncio.run(fleet.async_call(kit, lambda c: c.infer("tiny", png, "image/png")))
    pinned = asyncio.run(fleet.async_call(kit, lambda c: c.infer("tiny", png, "image/png", version="1")))
    assert isinstance(latest, InferResult)
    assert isinstance(pinned, InferResult)
    assert (latest.version, pinned.version) == ("2", "1")


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"not an image", "image/png", 400),
        (b"GIF89a....", "image/gif", 415),
        (b"hello", "text/plain", 415),
        (b"", "image/png", 400),
    ],
)
def test_bad_inputs_are_4xx_and_the_agent_stays_up(
    served, body: bytes, content_type: str, status: int
) -> None:
    agent, kit, _ = served
    with raw_client(agent, kit.token) as client:
        answer = client.post("/v1/models/tiny/infer", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == status, answer.text
        assert answer.json()["message"]
        assert client.get("/v1/health").status_code == 200


def test_a_tensor_of_the_wrong_shape_is_422(served) -> None:
    agent, kit, _ = served
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 3, 8, 8), dtype="float32"))
    with raw_client(agent, kit.token) as client:
        answer = client.post(
            "/v1/models/tiny/infer", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"}
        )
    assert answer.status_code == 422
    assert "16" in answer.json()["message"]


def test_unknown_model_is_404(served, fleet: Fleet) -> None:
    _, kit, _ = served
    with pytest.raises(AgentError, match="no model called 'nope'"):
        asyncio.run(fleet.async_call(kit, lambda c: c.infer("nope", _png(), "image/png")))


def test_infer_from_the_cli(served, fleet: Fleet, tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(_png())
    done = kitfleet(fleet.settings.home, "infer", "infer", "tiny", str(image))
    assert done.returncode == 0, done.stderr
    assert "tiny 1 (" in done.stdout
    assert "class-" in done.stdout


def test_a_raw_model_answers_tensors_naming_the_model(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    kit = adopt(start_agent("raw", mdns=False))
    model = tmp_path / "plain.onnx"
    manifest = classifier(model, name="plain", version="3")
    manifest.task, manifest.labels = "raw", []
    model.with_name("plain.manifest.json").write_text(manifest.model_dump_json())
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert outcome.ok, outcome.message
    tensor = tmp_path / "input.npy"
    np.save(tensor, np.random.default_rng(3).random((1, 3, 16, 16)).astype("float32"))

    answer = asyncio.run(
        fleet.async_call(kit, lambda c: c.infer("plain", tensor.read_bytes(), "application/x-npy"))
    )
    assert isinstance(answer, RawOutputs)
    assert (answer.version, answer.sha256) == ("3", manifest.sha256)
    scores = np.load(io.BytesIO(answer.npz))["scores"]
    assert scores.shape == (1, 4)
    assert abs(float(scores.sum()) - 1.0) < 1e-4

    done = kitfleet(
        fleet.settings.home, "infer", "raw", "plain", str(tensor), "--out", str(tmp_path / "out.npz")
    )
    assert done.returncode == 0, done.stderr
    assert f"plain 3 ({manifest.sha256[:12]})" in done.stdout
    assert np.allclose(np.load(tmp_path / "out.npz")["scores"], scores)


def test_the_short_infer_path_answers_exactly_as_the_full_route(served) -> None:
    """agent/api/fast_infer.py answers common requests past FastAPI's router. A repeated query
    parameter is refused by that path, so `?top_k=K&top_k=K` is served by the full route: every
    answer, good or bad, must be the same both ways (but the measured latency)."""
    agent, kit, _ = served
    tensor, wrong = io.BytesIO(), io.BytesIO()
    np.save(tensor, np.random.default_rng(5).random((1, 3, 16, 16)).astype("float32"))
    np.save(wrong, np.zeros((1, 3, 8, 8), dtype="float32"))
    npy = {"Content-Type": "application/x-npy"}
    png = {"Content-Type": "image/png"}
    cases = [
        ("tiny", "", tensor.getvalue(), npy),
        ("tiny", "&version=1", _png(), png),
        ("nope", "", _png(), {}),
        ("tiny", "", wrong.getvalue(), npy),
        ("tiny", "", b"hello", {}),
        ("tiny", "&version=9", _png(), {}),
        ("tiny", "", b"\x93NUMPY broken", npy),
    ]
    with raw_client(agent, kit.token) as client:
        assert client.get("/v1/models").status_code == 200  # the token is now recently verified
        for name, extra, body, headers in cases:
            path = f"/v1/models/{name}/infer?top_k=2"
            full = client.post(f"{path}&top_k=2{extra}", content=body, headers=headers)
            short = client.post(f"{path}{extra}", content=body, headers=headers)
            assert (short.status_code, short.headers["content-type"]) == (
                full.status_code,
                full.headers["content-type"],
            ), (name, extra, full.text, short.text)
            got, expected = short.json(), full.json()
            for answer in (got, expected):
                answer.pop("latency_ms", None)
            assert got == expected, (name, extra)
