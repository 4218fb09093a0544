"""The upgrade request the unprivileged agent stages for root's `kitfleet-agent apply-upgrade`
(agent/bundles/staged.py): hostile request files and staged wheels are refused before root
copies a byte of them (traversal names, symlinks, wrong hashes and sizes, oversize), and what
root writes back lands in the stage folder itself, never through a symlink the agent planted."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent.bundles import staged
from agent.bundles.staged import Request, RequestInvalid, copy_checked, parse_request, read_request

WHEEL = b"PK\x03\x04 a wheel's bytes" * 100
NAME = "kitfleet-0.2.0-py3-none-any.whl"


def _request(**over: Any) -> dict[str, Any]:
    wheel = {"name": NAME, "sha256": hashlib.sha256(WHEEL).hexdigest(), "size": len(WHEEL)}
    data = {"bundle": "a" * 64, "version": "0.2.0", "requirement": "kitfleet==0.2.0", "wheels": [wheel]}
    return {**data, **over}


def _stage(data_dir: Path, request: dict[str, Any], wheel: bytes = WHEEL) -> Path:
    folder = staged.stage_dir(data_dir)
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / NAME).write_bytes(wheel)
    (folder / "request.json").write_text(json.dumps(request))
    return folder


def test_a_good_request_is_read_and_its_wheel_copied_with_the_same_bytes(tmp_path: Path) -> None:
    _stage(tmp_path, _request())
    request = read_request(tmp_path)
    assert request is not None
    assert request.wheels == {NAME: (hashlib.sha256(WHEEL).hexdigest(), len(WHEEL))}
    into = tmp_path / "root-only"
    into.mkdir()
    copy_checked(tmp_path, request, into)
    assert (into / NAME).read_bytes() == WHEEL
    assert parse_request(request.wire()) == request  # what the agent writes, root reads


def test_nothing_staged_is_none(tmp_path: Path) -> None:
    assert read_request(tmp_path) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../etc/cron.d/x.whl", "not a wheel file name"),
        ("/etc/passwd.whl", "not a wheel file name"),
        ("sub/dir.whl", "not a wheel file name"),
        ("..whl", "not a wheel file name"),
        (".hidden.whl", "not a wheel file name"),
        ("setup.py", "not a wheel file name"),
        (7, "not a wheel file name"),
    ],
)
def test_names_that_are_not_plain_wheel_files_are_refused(name: object, why: str) -> None:
    wheel = {"name": name, "sha256": "b" * 64, "size": 10}
    with pytest.raises(RequestInvalid, match=why):
        parse_request(_request(wheels=[wheel]))


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"bundle": "xyz"}, "no bundle sha256"),
        ({"version": "1.0; rm -rf /"}, "not a version"),
        ({"requirement": "kitfleet @ file:///etc"}, "requirement"),
        ({"wheels": []}, "1 to"),
        ({"wheels": [{"name": NAME, "sha256": "b" * 64, "size": 1}] * 2}, "listed twice"),
        ({"wheels": [{"name": NAME, "sha256": "B" * 64, "size": 10}]}, "no sha256"),
        ({"wheels": [{"name": NAME, "sha256": "b" * 64, "size": staged.MAX_WHEEL + 1}]}, "size"),
        ({"wheels": [{"name": NAME, "sha256": "b" * 64, "size": True}]}, "size"),
        ({"wheels": [{"name": NAME, "sha256": "b" * 64, "size": 0}]}, "size"),
    ],
)
def test_malformed_requests_are_refused(over: dict[str, Any], why: str) -> None:
    with pytest.raises(RequestInvalid, match=why):
        parse_request(_request(**over))


def test_wheels_adding_up_past_the_bound_are_refused() -> None:
    wheels = [
        {"name": f"w{i}-1-py3-none-any.whl", "sha256": "b" * 64, "size": staged.MAX_WHEEL} for i in range(5)
    ]
    with pytest.raises(RequestInvalid, match="add up"):
        parse_request(_request(wheels=wheels))


def test_too_many_wheels_are_refused() -> None:
    wheels = [{"name": f"w{i}-1-py3-none-any.whl", "sha256": "b" * 64, "size": 1} for i in range(2001)]
    with pytest.raises(RequestInvalid, match="1 to 2000"):
        parse_request(_request(wheels=wheels))


def test_an_oversize_request_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = staged.stage_dir(tmp_path)
    folder.mkdir()
    (folder / "request.json").write_bytes(b" " * (staged.MAX_REQUEST + 1))
    with pytest.raises(RequestInvalid, match="at most"):
        read_request(tmp_path)


def test_a_request_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    folder = staged.stage_dir(tmp_path)
    folder.mkdir()
    (folder / "request.json").write_text("{not json")
    with pytest.raises(RequestInvalid, match="not JSON"):
        read_request(tmp_path)


def test_a_symlinked_request_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps(_request()))
    folder = staged.stage_dir(tmp_path)
    folder.mkdir()
    (folder / "request.json").symlink_to(secret)
    with pytest.raises(RequestInvalid, match="plain file"):
        read_request(tmp_path)


def test_a_symlinked_stage_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    _stage(elsewhere, _request())
    data = tmp_path / "data"
    data.mkdir()
    staged.stage_dir(data).symlink_to(staged.stage_dir(elsewhere))
    with pytest.raises(RequestInvalid, match="not a plain folder"):
        read_request(data)


def _copy(data_dir: Path, tmp_path: Path) -> None:
    request = read_request(data_dir)
    assert request is not None
    into = tmp_path / "into"
    into.mkdir(exist_ok=True)
    try:
        copy_checked(data_dir, request, into)
    finally:
        assert not (into / NAME).exists()  # nothing half-copied is left for pip to find


def test_a_staged_wheel_with_other_bytes_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    flipped = bytes([WHEEL[0] ^ 1]) + WHEEL[1:]
    _stage(data, _request(), flipped)
    with pytest.raises(RequestInvalid, match="does not match"):
        _copy(data, tmp_path)


def test_a_staged_wheel_of_another_size_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _stage(data, _request(), WHEEL + b"more")
    with pytest.raises(RequestInvalid, match="regular file of"):
        _copy(data, tmp_path)


def test_a_staged_wheel_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = _stage(data, _request())
    real = tmp_path / "real.whl"
    real.write_bytes(WHEEL)  # even with the right bytes: root never follows the agent's links
    (folder / "wheels" / NAME).unlink()
    (folder / "wheels" / NAME).symlink_to(real)
    with pytest.raises(RequestInvalid, match="plain file"):
        _copy(data, tmp_path)


def test_a_staged_wheel_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = _stage(data, _request())
    (folder / "wheels" / NAME).unlink()
    os.mkfifo(folder / "wheels" / NAME)
    with pytest.raises(RequestInvalid, match="regular file"):
        _copy(data, tmp_path)


def test_a_symlinked_wheels_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = _stage(data, _request())
    (folder / "wheels").rename(tmp_path / "other")
    (folder / "wheels").symlink_to(tmp_path / "other")
    with pytest.raises(RequestInvalid, match="not a plain folder"):
        _copy(data, tmp_path)


def test_the_outcome_goes_into_the_stage_folder_and_clears_the_request(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = _stage(data, _request())
    staged.write_outcome(data, {"outcome": "applied", "bundle": "a" * 64}, os.getuid(), os.getgid())
    assert staged.read_outcome(data)["outcome"] == "applied"
    assert not (folder / "request.json").exists()
    assert not (folder / "wheels").exists()


def test_an_outcome_is_never_written_through_a_planted_symlink(tmp_path: Path) -> None:
    data, target = tmp_path / "data", tmp_path / "etc"
    target.mkdir()
    data.mkdir()
    staged.stage_dir(data).symlink_to(target)  # the agent points its stage folder at /etc
    with pytest.raises(RequestInvalid, match="not a plain folder"):
        staged.write_outcome(data, {"outcome": "failed"}, os.getuid(), os.getgid())
    assert list(target.iterdir()) == []
    folder = staged.stage_dir(data)
    folder.unlink()
    folder.mkdir()
    (folder / "outcome.json").symlink_to(target / "passwd")
    (folder / "wheels").symlink_to(target)
    staged.write_outcome(data, {"outcome": "failed"}, os.getuid(), os.getgid())
    assert not (folder / "outcome.json").is_symlink()  # replaced by rename, the link's target untouched
    assert list(target.iterdir()) == []
    assert not (folder / "wheels").exists()


def test_the_request_round_trips_as_the_agent_writes_it(tmp_path: Path) -> None:
    request = Request("c" * 64, "0.3.0", "kitfleet==0.3.0", {NAME: ("d" * 64, 5)})
    staged.write_request(tmp_path, request)
    assert read_request(tmp_path) == request
