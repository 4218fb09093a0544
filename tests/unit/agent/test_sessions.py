"""The session cache: LRU bounds, one load per model, provider choice and CPU fallback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from agent.models import sessions
from agent.models.sessions import SessionCache
from agent.toolkit import sessions as toolkit_sessions
from agent.toolkit.sessions import CPU, choose_providers, default_threads
from agent.wire import Manifest
from tests.onnx_models import classifier

CUDA, TRT, OPENVINO = "CUDAExecutionProvider", "TensorrtExecutionProvider", "OpenVINOExecutionProvider"


@pytest.fixture
def models(tmp_path: Path) -> list[tuple[Path, Manifest]]:
    made = []
    for index in range(3):
        path = tmp_path / f"m{index}.onnx"
        made.append((path, classifier(path, name=f"m{index}", size=4, seed=index, golden=False)))
    return made


def test_the_same_key_gives_the_same_session(models: list[tuple[Path, Manifest]]) -> None:
    cache = SessionCache(2, 1)
    path, manifest = models[0]
    first = cache.get(path, manifest.sha256)
    assert cache.get(path, manifest.sha256) is first
    assert cache.get(path, "0" * 64) is not first
    assert [i.name for i in first.get_inputs()] == ["image"]


def test_the_least_recently_used_session_goes_first(models: list[tuple[Path, Manifest]]) -> None:
    cache = SessionCache(2, 1)
    (a, ma), (b, mb), (c, mc) = models
    session_a = cache.get(a, ma.sha256)
    session_b = cache.get(b, mb.sha256)
    cache.get(a, ma.sha256)  # a is now the most recent
    cache.get(c, mc.sha256)  # so b is evicted
    assert [s["path"] for s in cache.info()["sessions"]] == [str(a), str(c)]
    assert cache.get(a, ma.sha256) is session_a
    assert cache.get(b, mb.sha256) is not session_b


def test_evict_and_clear(models: list[tuple[Path, Manifest]]) -> None:
    cache = SessionCache(3, 1)
    for path, manifest in models:
        cache.get(path, manifest.sha256)
    cache.evict(models[1][0])
    assert [s["path"] for s in cache.info()["sessions"]] == [str(models[0][0]), str(models[2][0])]
    cache.clear()
    assert cache.info()["sessions"] == []


def test_concurrent_requests_load_a_model_once(
    models: list[tuple[Path, Manifest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_open = toolkit_sessions.open_session

    def slow_open(path: Path, threads: int, spinning: bool = True) -> tuple[Any, str | None]:
        loads.append(path)
        time.sleep(0.2)  # widen the window in which a second load could start
        return real_open(path, threads, spinning)

    monkeypatch.setattr(sessions, "open_session", slow_open)
    cache = SessionCache(2, 1)
    path, manifest = models[0]
    got: list[Any] = []
    workers = [
        threading.Thread(target=lambda: got.append(cache.get(path, manifest.sha256))) for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert loads == [path]
    assert len(got) == 6
    assert all(session is got[0] for session in got)


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        ([CPU], [CPU]),
        ([], [CPU]),
        ([CPU, CUDA], [CUDA, CPU]),
        (["AzureExecutionProvider", CPU, OPENVINO, CUDA, TRT], [TRT, CUDA, OPENVINO, CPU]),
        ([OPENVINO], [OPENVINO, CPU]),
    ],
)
def test_providers_prefer_accelerators_and_end_with_cpu(available: list[str], expected: list[str]) -> None:
    assert choose_providers(available) == expected


def test_a_failing_accelerator_falls_back_to_cpu_and_says_why(
    models: list[tuple[Path, Manifest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_session = ort.InferenceSession

    def fussy_session(path: str, options: Any, providers: list[str]) -> Any:
        if providers != [CPU]:
            raise RuntimeError("libcudnn.so.9: cannot open shared object file\nmore detail")
        return real_session(path, options, providers=providers)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", fussy_session)
    cache = SessionCache(1, 1)
    path, manifest = models[0]
    session = cache.get(path, manifest.sha256)
    assert session.get_providers() == [CPU]
    [entry] = cache.info()["sessions"]
    assert entry["fallback"] == f"{CUDA} failed: libcudnn.so.9: cannot open shared object file"


def test_threads_default_to_physical_cores() -> None:
    assert default_threads() >= 1
    assert SessionCache(1, None).threads == default_threads()
    assert SessionCache(1, 3).info() == {"capacity": 1, "threads": 3, "sessions": []}


def test_importing_the_cache_does_not_import_onnxruntime() -> None:
    program = (
        "import sys; from agent.models.sessions import SessionCache; SessionCache(2, None); "
        "print('onnxruntime' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.stdout.strip() == "False"
