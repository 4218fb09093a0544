"""The agent's settings: flag > environment > agent.json > default, with clear refusals."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from agent.config import CONFIG_FILE, ENV_PREFIX, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's own KITFLEET_AGENT_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def write_file(data_dir: Path, content: Any) -> Path:
    path = data_dir / CONFIG_FILE
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = Settings.resolve(tmp_path, {})
    assert settings.data_dir == tmp_path
    assert (settings.port, settings.host, settings.mdns) == (8443, "0.0.0.0", True)
    assert settings.mdns_interfaces == []


def test_file_beats_default(tmp_path: Path) -> None:
    write_file(tmp_path, {"port": 3, "name": "kit-3"})
    settings = Settings.resolve(tmp_path, {})
    assert (settings.port, settings.name) == (3, "kit-3")


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_file(tmp_path, {"port": 3})
    monkeypatch.setenv("KITFLEET_AGENT_PORT", "2")
    assert Settings.resolve(tmp_path, {}).port == 2


def test_flag_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_file(tmp_path, {"port": 3})
    monkeypatch.setenv("KITFLEET_AGENT_PORT", "2")
    assert Settings.resolve(tmp_path, {"port": 1}).port == 1


def test_a_flag_left_unset_falls_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse gives None for a flag not typed; that must not hide the environment."""
    monkeypatch.setenv("KITFLEET_AGENT_PORT", "2")
    assert Settings.resolve(tmp_path, {"port": None, "name": None}).port == 2


def test_other_settings_keep_their_own_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_file(tmp_path, {"name": "from-file"})
    monkeypatch.setenv("KITFLEET_AGENT_HOST", "127.0.0.1")
    settings = Settings.resolve(tmp_path, {"port": 0})
    assert (settings.port, settings.host, settings.name) == (0, "127.0.0.1", "from-file")


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("MDNS", "yes", True),
        ("MDNS", "On", True),
        ("MDNS", "0", False),
        ("MDNS", "false", False),
        ("METRICS_INTERVAL_S", "2.5", 2.5),
        ("METRICS_CAPACITY", "12", 12),
        ("MDNS_INTERFACES", "10.0.0.1, 10.0.0.2,", ["10.0.0.1", "10.0.0.2"]),
        ("NAME", "kit 7", "kit 7"),
    ],
)
def test_environment_values_are_parsed_to_the_settings_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, expected: Any
) -> None:
    monkeypatch.setenv(ENV_PREFIX + name, raw)
    assert getattr(Settings.resolve(tmp_path, {}), name.lower()) == expected


@pytest.mark.parametrize(
    ("name", "raw", "type_name"),
    [("PORT", "eighty", "int"), ("PORT", "", "int"), ("METRICS_INTERVAL_S", "10s", "float")],
)
def test_bad_environment_value_exits_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, type_name: str
) -> None:
    monkeypatch.setenv(ENV_PREFIX + name, raw)
    with pytest.raises(SystemExit) as caught:
        Settings.resolve(tmp_path, {})
    message = str(caught.value.code)
    assert f"{ENV_PREFIX}{name}={raw!r}" in message
    assert type_name in message


def test_bad_boolean_environment_value_exits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITFLEET_AGENT_MDNS", "ture")
    with pytest.raises(SystemExit, match="KITFLEET_AGENT_MDNS"):
        Settings.resolve(tmp_path, {})


@pytest.mark.parametrize("content", ["{not json", '{"port": 1,}', ""])
def test_malformed_file_exits_naming_it(tmp_path: Path, content: str) -> None:
    path = write_file(tmp_path, content)
    with pytest.raises(SystemExit) as caught:
        Settings.resolve(tmp_path, {})
    assert str(path) in str(caught.value.code)


@pytest.mark.parametrize("content", [[1, 2], "port", 8443, None])
def test_file_that_is_not_an_object_exits_naming_it(tmp_path: Path, content: Any) -> None:
    path = write_file(tmp_path, json.dumps(content))
    with pytest.raises(SystemExit) as caught:
        Settings.resolve(tmp_path, {})
    assert str(path) in str(caught.value.code)


def test_file_value_of_the_wrong_type_exits(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"port": "eighty"})
    with pytest.raises(SystemExit) as caught:
        Settings.resolve(tmp_path, {})
    assert str(path) in str(caught.value.code)


def test_every_setting_is_described(tmp_path: Path) -> None:
    described = Settings.resolve(tmp_path, {}).describe()
    assert set(described) == {f.name for f in fields(Settings)}
    assert all(entry["description"] for entry in described.values())
