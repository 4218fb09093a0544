"""The app's settings: argument > environment > settings.json in the home > default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from app.fleet.settings import SETTINGS_FILE, AppSettings


def write_settings(home: Path, data: Any) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / SETTINGS_FILE
    path.write_text(json.dumps(data))
    return path


def test_home_argument_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITFLEET_HOME", str(tmp_path / "from-env"))
    settings = AppSettings.resolve(home=tmp_path / "from-arg")
    assert settings.home == tmp_path / "from-arg"
    assert settings.home.is_dir()


def test_home_from_environment_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KITFLEET_HOME", "~/kitfleet-home")
    assert AppSettings.resolve().home == tmp_path / "kitfleet-home"


def test_home_defaults_to_the_platforms_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = AppSettings.resolve()
    assert settings.home == Path(platformdirs.user_data_dir("kitfleet"))
    assert settings.home.is_dir()


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = AppSettings.resolve(home=tmp_path)
    assert settings.mdns_interfaces == []
    assert settings.request_timeout_s == 5.0
    assert settings.poll_concurrency == 8


def test_interfaces_come_from_the_settings_file(tmp_path: Path) -> None:
    write_settings(tmp_path, {"mdns_interfaces": ["10.0.0.1"], "request_timeout_s": 2.5})
    settings = AppSettings.resolve(home=tmp_path)
    assert settings.mdns_interfaces == ["10.0.0.1"]
    assert settings.request_timeout_s == 2.5


def test_environment_beats_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(tmp_path, {"mdns_interfaces": ["10.0.0.1"], "poll_concurrency": 4})
    monkeypatch.setenv("KITFLEET_MDNS_INTERFACES", "127.0.0.1, 192.0.2.1")
    monkeypatch.setenv("KITFLEET_POLL_CONCURRENCY", "16")
    settings = AppSettings.resolve(home=tmp_path)
    assert settings.mdns_interfaces == ["127.0.0.1", "192.0.2.1"]
    assert settings.poll_concurrency == 16


def test_argument_beats_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(tmp_path, {"mdns_interfaces": ["10.0.0.1"]})
    monkeypatch.setenv("KITFLEET_MDNS_INTERFACES", "192.0.2.1")
    assert AppSettings.resolve(home=tmp_path, mdns_interfaces=["127.0.0.1"]).mdns_interfaces == ["127.0.0.1"]


def test_home_from_environment_supplies_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings(tmp_path / "env-home", {"mdns_interfaces": ["10.0.0.7"]})
    monkeypatch.setenv("KITFLEET_HOME", str(tmp_path / "env-home"))
    assert AppSettings.resolve().mdns_interfaces == ["10.0.0.7"]


def test_malformed_settings_file_exits_naming_it(tmp_path: Path) -> None:
    path = tmp_path / SETTINGS_FILE
    path.write_text("{broken")
    with pytest.raises(SystemExit) as caught:
        AppSettings.resolve(home=tmp_path)
    assert str(path) in str(caught.value.code)


@pytest.mark.parametrize("name", ["KITFLEET_TIMEOUT", "KITFLEET_POLL_CONCURRENCY"])
def test_bad_number_in_the_environment_exits_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "five")
    with pytest.raises(SystemExit, match=name):
        AppSettings.resolve(home=tmp_path)


def test_interfaces_given_as_a_string_are_not_split_into_characters(tmp_path: Path) -> None:
    """Either reading it like KITFLEET_MDNS_INTERFACES or refusing the file would do."""
    path = write_settings(tmp_path, {"mdns_interfaces": "127.0.0.1"})
    outcome = interfaces_or_refusal(tmp_path)
    assert outcome == ["127.0.0.1"] or (isinstance(outcome, str) and str(path) in outcome)


def interfaces_or_refusal(home: Path) -> list[str] | str:
    try:
        return AppSettings.resolve(home=home).mdns_interfaces
    except SystemExit as exc:
        return str(exc.code)
