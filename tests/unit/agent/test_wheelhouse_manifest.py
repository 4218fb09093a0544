"""The wheelhouse manifest as a kit reads it from a bundle (agent/toolkit/wheelhouse.py): its
names become paths on the kit, so anything but a plain wheel file name is refused, as is a file
without its sha256 and size or a target listing files the manifest does not hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.toolkit.wheelhouse import (
    HouseManifest,
    pip_install_command,
    target_key,
    venv_name,
    version_of,
)

SHA = "ab" * 32


def _manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "project": "kitfleet",
        "version": "0.2.0",
        "requirement": "kitfleet[agent]==0.2.0",
        "glibc": "2.31",
        "targets": {"x86_64-cp311": ["kitfleet-0.2.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"]},
        "files": {
            "kitfleet-0.2.0-py3-none-any.whl": {"sha256": SHA, "size": 10},
            "pip-24.0-py3-none-any.whl": {"sha256": SHA, "size": 20},
        },
    }
    data.update(changes)
    return data


def test_a_sound_manifest_gives_each_target_its_wheels() -> None:
    house = HouseManifest.parse(_manifest())
    assert house.version == "0.2.0"
    assert house.wheels_for(target_key("amd64", (3, 11))) == [
        "kitfleet-0.2.0-py3-none-any.whl",
        "pip-24.0-py3-none-any.whl",
    ]
    assert house.wheels_for("aarch64-cp311") is None
    assert house.describe_targets() == "x86_64 CPython 3.11"


@pytest.mark.parametrize(
    "name",
    ["../evil.whl", "/abs/evil.whl", "sub/dir.whl", "evil.tar.gz", ".hidden.whl", "a\x00b.whl", "x..y.whl"],
)
def test_a_name_that_is_not_a_plain_wheel_file_is_refused(name: str) -> None:
    data = _manifest()
    data["files"][name] = {"sha256": SHA, "size": 1}
    with pytest.raises(ValueError, match="not a wheel file name"):
        HouseManifest.parse(data)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"format": 2}, "not a kitfleet wheelhouse manifest"),
        ({"version": ""}, "version"),
        ({"files": []}, "malformed"),
        (
            {"targets": {"x86_64-cp311": ["missing-1.0-py3-none-any.whl"]}},
            "lists files the manifest does not",
        ),
    ],
)
def test_a_malformed_manifest_says_what_is_wrong(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        HouseManifest.parse(_manifest(**change))


@pytest.mark.parametrize(("field", "value"), [("sha256", "nothex"), ("size", -1), ("size", "10")])
def test_a_file_without_a_good_sha256_and_size_is_refused(field: str, value: Any) -> None:
    data = copy.deepcopy(_manifest())
    data["files"]["pip-24.0-py3-none-any.whl"][field] = value
    with pytest.raises(ValueError, match=r"pip-24\.0"):
        HouseManifest.parse(data)


def test_pip_never_reaches_an_index_and_venv_names_say_their_version() -> None:
    command = pip_install_command("/kit/venvs/v", "/w/pip.whl", "/w", "kitfleet[agent]==0.2.0")
    assert command[:2] == ["/kit/venvs/v/bin/python", "/w/pip.whl/pip"]
    assert "--no-index" in command
    assert command[command.index("--find-links") + 1] == "/w"
    name = venv_name("0.2.0", "20261206041500")
    assert version_of(name) == "0.2.0"
    assert version_of("hand-made") == "hand-made"
