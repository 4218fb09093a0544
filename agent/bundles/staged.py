"""An agent upgrade staged for root under systemd: the request the agent leaves, checked again.

The hardened agent (it may write only its data dir) cannot install a venv under the install
root, so after it verified the bundle it leaves the checked wheels in `<data>/upgrade/wheels/`
and `<data>/upgrade/request.json` (the bundle's sha256, the target version, the requirement and
every wheel's name, sha256 and size). `kitfleet-agent-upgrade.path` sees the request and starts
the root oneshot `kitfleet-agent apply-upgrade` (agent/bundles/apply_staged.py), which trusts
none of it: the request is parsed with bounds, every name must be a plain wheel file name, every
wheel a regular file (never followed through a symlink) of the stated size, and each is copied
into a folder only root can write while its sha256 is computed, so the agent cannot swap a file
after the check. The outcome goes back to `<data>/upgrade/outcome.json`, which the agent reads
at its next start (agent/bundles/upgrade_state.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.toolkit.durable import write_atomic

__all__ = [
    "MAX_REQUEST",
    "MAX_TOTAL",
    "MAX_WHEEL",
    "MAX_WHEELS",
    "OUTCOME",
    "REQUEST",
    "Request",
    "RequestInvalid",
    "copy_checked",
    "open_stage",
    "parse_request",
    "read_outcome",
    "read_request",
    "stage_dir",
    "write_outcome",
    "write_request",
]

STAGE = "upgrade"
REQUEST = "request.json"
OUTCOME = "outcome.json"
WHEELS = "wheels"
MAX_REQUEST = 1 << 20  # bytes of request.json
MAX_WHEELS = 2000
MAX_WHEEL = 1 << 30  # one wheel (onnxruntime-gpu is ~300 MB)
MAX_TOTAL = 4 << 30  # all of them
_WHEEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,200}\.whl$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=<>!~\[\], -]{0,199}$")


class RequestInvalid(ValueError):
    """The staged request or a staged wheel is not what it must be; the message says which."""


@dataclass(frozen=True)
class Request:
    bundle: str
    version: str
    requirement: str
    wheels: dict[str, tuple[str, int]]  # name -> (sha256, size)

    def wire(self) -> dict[str, Any]:
        wheels = [{"name": n, "sha256": s, "size": z} for n, (s, z) in self.wheels.items()]
        head = {"bundle": self.bundle, "version": self.version, "requirement": self.requirement}
        return {**head, "wheels": wheels}


def stage_dir(data_dir: Path) -> Path:
    return Path(data_dir) / STAGE


def parse_request(data: Any) -> Request:
    """Raises RequestInvalid saying what is wrong; no name becomes a path unchecked."""
    if not isinstance(data, dict):
        raise RequestInvalid("the upgrade request is not a JSON object")
    bundle, version, requirement = data.get("bundle"), data.get("version"), data.get("requirement")
    if not isinstance(bundle, str) or not _HEX.match(bundle):
        raise RequestInvalid("the upgrade request has no bundle sha256")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise RequestInvalid("the upgrade request's version is missing or not a version")
    if not isinstance(requirement, str) or not _REQUIREMENT.match(requirement):
        raise RequestInvalid("the upgrade request's requirement is missing or malformed")
    listed = data.get("wheels")
    if not isinstance(listed, list) or not 0 < len(listed) <= MAX_WHEELS:
        raise RequestInvalid(f"the upgrade request must list 1 to {MAX_WHEELS} wheels")
    wheels: dict[str, tuple[str, int]] = {}
    for item in listed:
        if not isinstance(item, dict):
            raise RequestInvalid("a wheel in the upgrade request is not an object")
        name, sha, size = item.get("name"), item.get("sha256"), item.get("size")
        if not isinstance(name, str) or not _WHEEL.match(name) or ".." in name or name in wheels:
            raise RequestInvalid(f"{str(name)[:80]!r} is not a wheel file name (or is listed twice)")
        if not isinstance(sha, str) or not _HEX.match(sha):
            raise RequestInvalid(f"{name} has no sha256")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_WHEEL:
            raise RequestInvalid(f"{name}'s size must be 1 byte to {MAX_WHEEL >> 20} MiB")
        wheels[name] = (sha, size)
    if sum(size for _, size in wheels.values()) > MAX_TOTAL:
        raise RequestInvalid(f"the staged wheels add up to more than {MAX_TOTAL >> 30} GiB")
    return Request(bundle, version, requirement, wheels)


def open_stage(data_dir: Path) -> int | None:
    """A descriptor of `<data>/upgrade` (never through a symlink: the agent owns it), or None.
    Root reads and writes below it only relative to this descriptor."""
    try:
        return os.open(stage_dir(data_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RequestInvalid(f"{stage_dir(data_dir)} is not a plain folder: {exc.strerror}") from None


def read_request(data_dir: Path) -> Request | None:
    """The staged request, checked; None when nothing is staged."""
    path = stage_dir(data_dir) / REQUEST
    folder = open_stage(data_dir)
    if folder is None:
        return None
    try:
        fd = os.open(REQUEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RequestInvalid(f"{path} cannot be opened as a plain file: {exc.strerror}") from None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REQUEST:
            raise RequestInvalid(f"{path} is not a regular file of at most {MAX_REQUEST >> 10} KiB")
        raw = handle.read(MAX_REQUEST + 1)
    try:
        data = json.loads(raw)
    except ValueError:
        raise RequestInvalid(f"{path} is not JSON") from None
    return parse_request(data)


def copy_checked(data_dir: Path, request: Request, into: Path) -> None:
    """Copy each staged wheel into `into` (a folder only the caller can write), hashing the bytes
    copied: a symlink, a non-regular file, a wrong size or sha256 is refused."""
    stage = open_stage(data_dir)
    if stage is None:
        raise RequestInvalid(f"{stage_dir(data_dir)} is gone")
    try:
        folder = os.open(WHEELS, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=stage)
    except OSError as exc:
        raise RequestInvalid(f"the staged wheels are not a plain folder: {exc.strerror}") from None
    finally:
        os.close(stage)
    try:
        for name, (sha, size) in request.wheels.items():
            _copy_one(folder, name, sha, size, into / name)
    finally:
        os.close(folder)


def _copy_one(folder: int, name: str, sha: str, size: int, target: Path) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        why = exc.strerror
        raise RequestInvalid(f"staged wheel {name} cannot be opened as a plain file: {why}") from None
    digest = hashlib.sha256()
    copied = 0
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise RequestInvalid(f"staged wheel {name} is not a regular file of {size} bytes")
        with target.open("xb") as out:
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if copied > size:
                    break
                digest.update(chunk)
                out.write(chunk)
    if copied != size or digest.hexdigest() != sha:
        target.unlink(missing_ok=True)
        raise RequestInvalid(f"staged wheel {name} does not match the request's sha256 and size")


def write_request(data_dir: Path, request: Request) -> None:
    """The agent's side, last: the path unit starts root's oneshot when this file appears."""
    stage_dir(data_dir).mkdir(mode=0o700, exist_ok=True)
    write_atomic(stage_dir(data_dir) / REQUEST, json.dumps(request.wire()).encode())


def write_outcome(data_dir: Path, outcome: dict[str, Any], uid: int, gid: int) -> None:
    """Root's side: outcome.json written relative to the stage folder's descriptor, owned by the
    agent's user, renamed into place; the request and staged wheels removed the same way."""
    folder = open_stage(data_dir)
    if folder is None:
        os.mkdir(stage_dir(data_dir), 0o700)
        os.chown(stage_dir(data_dir), uid, gid)
        folder = open_stage(data_dir)
        assert folder is not None
    try:
        tmp = f".{OUTCOME}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as out:
            os.fchown(out.fileno(), uid, gid)
            out.write(json.dumps(outcome).encode())
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, OUTCOME, src_dir_fd=folder, dst_dir_fd=folder)
        with contextlib.suppress(OSError):
            os.unlink(REQUEST, dir_fd=folder)
        _remove_wheels(folder)
        os.fsync(folder)
    finally:
        os.close(folder)


def _remove_wheels(folder: int) -> None:
    try:
        wheels = os.open(WHEELS, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(WHEELS, dir_fd=folder)  # a symlink or a file in its place
        return
    try:
        for name in os.listdir(wheels)[: MAX_WHEELS * 2]:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=wheels)
    finally:
        os.close(wheels)
    with contextlib.suppress(OSError):
        os.rmdir(WHEELS, dir_fd=folder)


def read_outcome(data_dir: Path) -> dict[str, Any]:
    path = stage_dir(data_dir) / OUTCOME
    try:
        if path.is_symlink() or path.stat().st_size > MAX_REQUEST:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
