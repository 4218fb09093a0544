"""Small helpers for talking to a real agent without the app's client."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.wire import device_id_from_der, pair_key, pair_proof
from app.fleet.localagent import LocalAgent


def raw_client(agent: LocalAgent, token: str | None = None) -> httpx.Client:
    """An unpinned client for probing the API the way an attacker or fuzzer would."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"https://{agent.address}", verify=False, headers=headers, timeout=10)


def device_id(agent: LocalAgent) -> str:
    import ssl

    pem = ssl.get_server_certificate((agent.host, agent.port))
    return device_id_from_der(ssl.PEM_cert_to_DER_cert(pem))


def pair_body(code: str, device: str, scope: str = "admin") -> dict[str, Any]:
    app_id, nonce = "app-" + secrets.token_hex(8), secrets.token_hex(16)
    return {
        "app_id": app_id,
        "nonce": nonce,
        "scope": scope,
        "proof": pair_proof(pair_key(code, device), device, app_id, nonce),
    }


def pair(agent: LocalAgent, scope: str = "admin") -> str:
    """Pair directly and return a token."""
    with raw_client(agent) as client:
        response = client.post("/v1/pair", json=pair_body(agent.pair_code(), device_id(agent), scope))
    response.raise_for_status()
    return str(response.json()["token"])


def kitfleet(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `kitfleet` CLI, browsing mDNS only on loopback."""
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    return subprocess.run(
        [sys.executable, "-m", "app", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def tar_archive(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A tar of files (name → bytes) and symlinks (name → target), as a dataset upload."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


@contextmanager
def small_tmpfs(tmp_path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` made by the test, unmounted even when the test fails; skips
    without root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command on this machine")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
