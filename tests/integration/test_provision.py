"""`kitfleet provision` end to end against a real OpenSSH sshd on loopback, with no package index.

The "kit" is this machine reached over SSH as the same user, installed under a temporary kit root
with its own HOME, served by the user-level supervisor (never systemd, never the real ~/.config).
Every agent listens on 127.0.0.1 without mDNS. The kit's pip sees PIP_INDEX_URL pointing at a
closed loopback port, so an install that tried to reach an index would fail.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.fleet.bundles.ledger import Ledger
from app.fleet.deploy import async_deploy
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.signing import load_or_create
from app.provision import (
    AuthFailed,
    HostKeyChanged,
    InstallFailed,
    KitOptions,
    KnownHosts,
    Login,
    ProvisionRequest,
    SshTarget,
    Step,
    Unsupported,
    UpgradeFailed,
    async_provision,
    probe_host_key,
)
from app.provision.kitinfo import KitInfo, check_supported
from app.provision.session import SshSession
from resources import models_dir
from tests.integration.helpers import kitfleet
from tests.sshd import Sshd, free_port
from tests.wheelhouse import broken_copy, retarget, this_target, wheelhouse

__all__ = ["wheelhouse"]  # the session fixture, imported so pytest finds it

pytestmark = pytest.mark.skipif(not Sshd.available(), reason="needs OpenSSH sshd")
CLOSED_INDEX = "http://127.0.0.1:9/"  # the discard port: nothing listens, nothing leaves the host
MODEL = models_dir() / "digits-cnn-int8.onnx"
OLD_PYTHON = Path.home() / ".pyenv" / "versions" / "3.9.18" / "bin" / "python3.9"


@dataclass
class Lab:
    sshd: Sshd
    home: Path
    kit_root: Path
    kit_home: Path
    agent_port: int
    wheelhouse: Path
    first_output: str = ""  # what the first `kitfleet provision` printed on stderr

    @property
    def target(self) -> SshTarget:
        return SshTarget(self.sshd.user, "127.0.0.1", self.sshd.port)

    def cli_args(self, *extra: str) -> list[str]:
        return [
            "provision",
            str(self.target),
            "--key",
            str(self.sshd.client_key),
            "--wheelhouse",
            str(self.wheelhouse),
            "--kit-root",
            str(self.kit_root),
            "--service",
            "user",
            "--agent-port",
            str(self.agent_port),
            "--name",
            "lab-kit",
            "--agent-setting",
            'host="127.0.0.1"',
            "--agent-setting",
            "mdns=false",
            "--remote-env",
            f"HOME={self.kit_home}",
            "--remote-env",
            f"PIP_INDEX_URL={CLOSED_INDEX}",
            *extra,
        ]

    def request(
        self, wheelhouse: Path | None = None, login: Login | None = None, **options: Any
    ) -> ProvisionRequest:
        return ProvisionRequest(
            self.target,
            login or Login(key_file=self.sshd.client_key),
            wheelhouse or self.wheelhouse,
            KitOptions(
                kit_root=str(self.kit_root),
                service="user",
                name="lab-kit",
                agent_port=self.agent_port,
                agent_settings={"host": "127.0.0.1", "mdns": False},
                remote_env={"HOME": str(self.kit_home), "PIP_INDEX_URL": CLOSED_INDEX},
                **options,
            ),
        )

    def fleet(self) -> Fleet:
        return Fleet(AppSettings.resolve(home=self.home, mdns_interfaces=["127.0.0.1"]))

    def provision(self, request: ProvisionRequest) -> Any:
        fleet = self.fleet()
        steps: list[Step] = []
        try:
            return asyncio.run(async_provision(fleet, request, steps.append))
        finally:
            fleet.close()

    def supervisor(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(self.kit_root / "supervise.py"),
                action,
                "--pid-file",
                str(self.kit_root / "run" / "supervisor.pid"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def agent_pid(self) -> int:
        state = json.loads((self.kit_root / "run" / "supervisor.pid.state").read_text())
        assert state["running"], state
        return int(state["child_pid"])

    def current(self) -> Path:
        return (self.kit_root / "current").resolve()

    def health(self) -> dict[str, Any]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(
            f"https://127.0.0.1:{self.agent_port}/v1/health", context=ctx, timeout=5
        ) as response:
            data: dict[str, Any] = json.load(response)
        return data


def new_lab(root: Path, house: Path, **sshd_options: Any) -> Lab:
    sshd = Sshd(root / "sshd", **sshd_options).start()
    (root / "kit-home").mkdir()
    return Lab(sshd, root / "home", root / "kit", root / "kit-home", free_port(), house)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Lab]:
    """One kit installed by the real CLI, shared by the tests that upgrade or read it."""
    lab = new_lab(tmp_path_factory.mktemp("lab"), wheelhouse)
    try:
        done = kitfleet(lab.home, *lab.cli_args("--accept-new-host-key"))
        assert done.returncode == 0, done.stderr
        lab.first_output = done.stderr
        yield lab
    finally:
        lab.supervisor("stop")
        lab.sshd.stop()


@pytest.fixture
def lab(tmp_path: Path, wheelhouse: Path) -> Iterator[Lab]:
    lab = new_lab(tmp_path, wheelhouse, passwords=True, log_level="VERBOSE")
    try:
        yield lab
    finally:
        if (lab.kit_root / "supervise.py").exists():
            lab.supervisor("stop")
        lab.sshd.stop()


def trust(lab: Lab) -> None:
    SshSession.connect(
        lab.target, Login(key_file=lab.sshd.client_key, accept_new_host_key=True), KnownHosts(lab.home)
    ).close()


# a kit installed, started and adopted ---------------------------------------------------------


def test_provision_installs_starts_and_adopts_the_kit(provisioned: Lab) -> None:
    lab = provisioned
    shown = [
        int(line[1 : line.index("/")])
        for line in lab.first_output.splitlines()
        if line.startswith("[") and "/10]" in line
    ]
    assert shown == sorted(shown)  # every step announced, in order
    assert sorted(set(shown)) == list(range(1, 11))
    health = lab.health()
    fleet = lab.fleet()
    try:
        kit = fleet.inventory.resolve("lab-kit")
        trusted = Ledger(fleet.inventory).trusted_key(kit.device_id)
    finally:
        fleet.close()
    assert kit.device_id == health["device_id"]
    assert trusted == load_or_create(lab.home).current.key_id, "the kit trusts the app's bundle key"
    assert kit.address == f"127.0.0.1:{lab.agent_port}"
    assert lab.current().parent == lab.kit_root / "venvs"
    cmdline = Path(f"/proc/{lab.agent_pid()}/cmdline").read_bytes().split(b"\0")
    assert str(lab.kit_root / "current" / "bin" / "kitfleet-agent") in cmdline[1].decode()
    facts = kitfleet(lab.home, "facts", "lab-kit", "--json")
    assert facts.returncode == 0, facts.stderr
    data = json.loads(facts.stdout)
    assert data["live"] is True
    assert data["families"]["disks"]["data_dir"]["path"] == str(lab.kit_root / "data")
    sent = sorted(p.name for p in (lab.kit_root / "wheelhouse").glob("*.whl"))
    assert sent == sorted(json.loads((lab.wheelhouse / "manifest.json").read_text())["files"])


def test_rerun_upgrades_in_place_keeping_identity_and_models(provisioned: Lab) -> None:
    lab = provisioned
    fleet = lab.fleet()
    try:
        kit = fleet.inventory.resolve("lab-kit")
        outcomes = asyncio.run(async_deploy(fleet, MODEL, [kit], activate=True))
        assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    finally:
        fleet.close()
    venv_before, pid_before = lab.current(), lab.agent_pid()

    done = kitfleet(lab.home, *lab.cli_args("--json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["previous_version"] == result["version"]
    assert result["device_id"] == kit.device_id
    assert result["wheels_sent"] == 0  # every wheel was on the kit already, sha256-checked
    assert lab.current() != venv_before
    assert venv_before.exists()  # kept for a manual roll-back
    assert lab.agent_pid() != pid_before
    assert lab.health()["device_id"] == kit.device_id
    fleet = lab.fleet()
    try:
        again = fleet.inventory.resolve("lab-kit")
        models = asyncio.run(fleet.async_call(again, lambda c: c.models()))
    finally:
        fleet.close()
    assert again.token != kit.token  # a fresh token; the old one was revoked by enroll
    old = httpx.get(
        f"https://127.0.0.1:{lab.agent_port}/v1/facts",
        verify=False,
        timeout=10,
        headers={"Authorization": f"Bearer {kit.token}"},
    )
    assert old.status_code == 401
    manifest = json.loads(MODEL.with_suffix("").with_suffix(".manifest.json").read_text())
    assert (manifest["name"], manifest["version"]) in {(m.name, m.active_version) for m in models}


@pytest.mark.parametrize(
    ("member", "code", "error", "says", "restarted"),
    [
        # Imports, starts, then dies: the switch happens, health never comes, the old venv returns.
        (
            "agent/server.py",
            "def run(settings):\n    raise SystemExit('deliberately broken build')",
            UpgradeFailed,
            r"did not come up .* previous agent \(0\.1\.0\) is running again",
            True,
        ),
        # Does not even import: the self-check stops it before the running agent is touched.
        (
            "agent/api/app.py",
            "raise ImportError('deliberately broken build')",
            InstallFailed,
            r"(?s)left as it was.*import check.*deliberately broken build",
            False,
        ),
    ],
)
def test_failed_upgrade_leaves_the_previous_agent_running(
    provisioned: Lab,
    tmp_path: Path,
    member: str,
    code: str,
    error: type[Exception],
    says: str,
    restarted: bool,
) -> None:
    lab = provisioned
    broken = broken_copy(lab.wheelhouse, tmp_path / "broken", member, code)
    venv_before, pid_before = lab.current(), lab.agent_pid()
    device = lab.health()["device_id"]

    with pytest.raises(error, match=says):
        lab.provision(lab.request(broken, health_timeout_s=15))

    assert lab.current() == venv_before
    assert (lab.agent_pid() != pid_before) == restarted
    assert lab.health()["device_id"] == device
    venvs = sorted(p.name for p in (lab.kit_root / "venvs").iterdir())
    assert len(venvs) <= 2, venvs  # the broken venv was removed
    facts = kitfleet(lab.home, "facts", "lab-kit", "--json")
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["live"] is True


def test_ssh_logs_reads_the_service_log(provisioned: Lab) -> None:
    done = kitfleet(provisioned.home, "ssh-logs", "lab-kit", "--lines", "50")
    assert done.returncode == 0, done.stderr
    assert "supervisor: starting" in done.stdout
    assert f"listening on https://127.0.0.1:{provisioned.agent_port}" in done.stdout


# refusals -----------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_and_nothing_is_sent(lab: Lab) -> None:
    done = kitfleet(lab.home, *lab.cli_args())
    assert done.returncode == 1
    assert lab.sshd.host_key_fingerprint() in done.stderr
    assert "--accept-new-host-key" in done.stderr
    assert not lab.kit_root.exists()
    assert KnownHosts(lab.home).known_key("127.0.0.1", lab.sshd.port, "ssh-ed25519") is None
    log = lab.sshd.log_path.read_text()
    assert "Connection from 127.0.0.1" in log  # the server did see us...
    assert "publickey" not in log
    assert "password" not in log  # ...but no login was attempted
    trust(lab)  # the control: a trusted connection does show up as a login
    assert "Accepted publickey" in lab.sshd.log_path.read_text()
    check = probe_host_key(lab.target, KnownHosts(lab.home))
    assert (check.trust, check.fingerprint) == ("known", lab.sshd.host_key_fingerprint())


def test_changed_host_key_is_refused_even_when_accepting_new_keys(lab: Lab) -> None:
    trust(lab)
    old = lab.sshd.host_key_fingerprint()
    lab.sshd.change_host_key()
    new = lab.sshd.host_key_fingerprint()
    with pytest.raises(HostKeyChanged) as refused:
        lab.provision(lab.request(login=Login(key_file=lab.sshd.client_key, accept_new_host_key=True)))
    assert new in str(refused.value)
    assert old in str(refused.value)
    assert str(lab.home / "known_hosts") in str(refused.value)
    check = probe_host_key(lab.target, KnownHosts(lab.home))
    assert (check.trust, check.known_fingerprint) == ("changed", old)
    done = kitfleet(lab.home, *lab.cli_args("--accept-new-host-key"))
    assert done.returncode == 1
    assert "refusing to connect" in done.stderr
    assert not lab.kit_root.exists()


def test_wrong_password_or_key_fails_clearly(lab: Lab, tmp_path: Path) -> None:
    trust(lab)
    with pytest.raises(AuthFailed, match="password was refused"):
        lab.provision(lab.request(login=Login(password="not-the-password")))
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    done = kitfleet(
        lab.home, *[str(stranger) if a == str(lab.sshd.client_key) else a for a in lab.cli_args()]
    )
    assert done.returncode == 1
    assert "login failed: the key stranger was refused" in done.stderr
    assert "authorized_keys" in done.stderr
    assert not lab.kit_root.exists()


def test_kit_the_wheelhouse_cannot_serve_is_refused(lab: Lab, tmp_path: Path) -> None:
    trust(lab)
    arch, python = this_target()
    key = f"{arch}-cp{python.replace('.', '')}"
    other = retarget(
        lab.wheelhouse, tmp_path / "other", {key: "aarch64-cp312" if arch != "aarch64" else "x86_64-cp312"}
    )
    with pytest.raises(Unsupported, match=r"has no wheels for .* CPython .*; build one for "):
        lab.provision(lab.request(other))
    if OLD_PYTHON.exists():
        with pytest.raises(Unsupported, match=r"Python 3\.9\.\d+; the agent needs 3\.10"):
            lab.provision(lab.request(python=str(OLD_PYTHON)))
    done = kitfleet(lab.home, *lab.cli_args("--kit-python", "/nonexistent/python3"))
    assert done.returncode == 1
    assert "has no `/nonexistent/python3`" in done.stderr
    assert not lab.kit_root.exists()


def _info(**changes: Any) -> KitInfo:
    base: dict[str, Any] = dict(
        arch="x86_64",
        system="Linux",
        os="Debian 12",
        python=(3, 11, 2),
        implementation="cpython",
        executable="/usr/bin/python3",
        libc=("glibc", "2.36"),
        uid=0,
        home="/root",
        systemd=True,
        free_bytes=10 << 30,
    )
    return KitInfo(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"arch": "riscv64"}, "riscv64"),
        ({"system": "Darwin"}, "Linux only"),
        ({"python": (3, 9, 18)}, "3.10 or newer"),
        ({"libc": ("", "")}, "musl"),
        ({"libc": ("glibc", "2.17")}, "glibc 2.28"),
        ({"implementation": "pypy"}, "CPython"),
        ({"free_bytes": 1 << 20}, "MiB free"),
    ],
)
def test_unsupported_platforms_are_named(changes: dict[str, Any], says: str) -> None:
    check_supported(_info(), "2.28", 1 << 30)  # the baseline passes
    with pytest.raises(Unsupported, match=says):
        check_supported(_info(**changes), "2.28", 1 << 30)


def test_supervisor_restarts_a_failing_agent_until_its_start_limit(tmp_path: Path) -> None:
    """The user-level service's policy, on a program that always fails: restarted, then given up."""
    script = Path(__file__).resolve().parents[2] / "app" / "provision" / "supervisor.py"
    pid_file, log = tmp_path / "run" / "sup.pid", tmp_path / "log" / "service.log"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "start",
            "--pid-file",
            str(pid_file),
            "--log",
            str(log),
            "--max-starts",
            "2",
            "--interval",
            "120",
            "--foreground",
            "--",
            sys.executable,
            "-c",
            "import sys; print('agent failing'); sys.exit(3)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    text = log.read_text()
    assert text.splitlines().count("agent failing") == 2  # its output, once per start
    assert "agent exited with 3; restarting" in text
    assert "start limit hit: 2 starts within 120 s" in text
    assert not pid_file.exists()
    state = json.loads(Path(f"{pid_file}.state").read_text())
    assert state == {"running": False, "gave_up": True}
