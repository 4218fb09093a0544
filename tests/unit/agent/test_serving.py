"""The remembered serving version follows every change made to the store on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.models.serving import ServingModels
from agent.models.store import STATE_FILE, ModelStore
from agent.wire import Manifest
from tests.onnx_models import classifier


def install(store: ModelStore, tmp_path: Path, version: str) -> Manifest:
    path = tmp_path / f"upload-{version}.onnx"
    manifest = classifier(path, version=version)
    store.install(manifest, path)
    return manifest


def test_activate_rollback_and_delete_are_seen_on_the_next_request(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    serving = ServingModels(store)
    first, second = install(store, tmp_path, "1"), install(store, tmp_path, "2")
    store.activate("tiny", "1")
    assert serving.active("tiny")[0].sha256 == first.sha256
    assert serving.active("tiny")[0].sha256 == first.sha256  # remembered
    store.activate("tiny", "2")
    manifest, path = serving.active("tiny")
    assert (manifest.version, manifest.sha256) == ("2", second.sha256)
    assert path == store.active("tiny")[1]
    store.rollback("tiny")
    assert serving.active("tiny")[0].version == "1"
    assert serving.active("tiny", "2")[0].version == "2"  # a named version, not the serving one
    store.delete("tiny", "2")
    with pytest.raises(Refusal) as gone:
        serving.active("tiny", "2")
    assert status_of(gone.value) == 404


def test_a_state_file_replaced_behind_its_back_is_read_again(tmp_path: Path) -> None:
    """Another process (a job, a restart) writes state.json whole: a new inode, seen at once."""
    store = ModelStore(tmp_path / "models")
    serving = ServingModels(store)
    install(store, tmp_path, "1")
    install(store, tmp_path, "2")
    store.activate("tiny", "1")
    assert serving.active("tiny")[0].version == "1"
    state = store.root / "tiny" / STATE_FILE
    replacement = state.with_name("state.json.new")
    replacement.write_text(json.dumps({"active": "2", "previous": "1"}))
    os.replace(replacement, state)
    assert serving.active("tiny")[0].version == "2"


def test_bad_names_and_missing_models_are_the_stores_errors(tmp_path: Path) -> None:
    serving = ServingModels(ModelStore(tmp_path / "models"))
    for name, status in (("../etc", 422), ("absent", 404)):
        with pytest.raises(Refusal) as refused:
            serving.active(name)
        assert status_of(refused.value) == status
