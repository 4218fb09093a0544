"""Trust lab, pairing and adoption under attack (issue 15: 4, 5, 12 and 13), on loopback only.

4.  A rogue kit (its own self-signed certificate, 200 with a made-up token to any pairing) is
    refused by the app before anything is saved: the kit must prove it knows the code too.
5.  A local user of the kit cannot read its database (the stored pairing key, the tokens): the
    agent keeps its data dir owner-only, and repairs looser modes at start.
12. Wrong proofs from one address lock that address, not everyone; a crowd of addresses still
    locks pairing; X-Forwarded-For is not believed.
13. A laptop adopts with the operator scope unless the technician asks for admin; its
    inventory (tokens) is readable by its owner only.

Every socket goes to 127.0.0.1 or 127.0.0.2..127.0.0.12 (loopback); mDNS only on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import ssl
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from agent.identity import load_or_create
from agent.mdns import Advertiser
from agent.wire import PACKAGE_VERSION, TxtRecord
from app.fleet.errors import AdoptionRefused
from app.fleet.inventory import DB_FILE as INVENTORY_FILE
from app.fleet.inventory import Inventory
from app.fleet.localagent import LOOPBACK, LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.provision.install import _mkdir_data
from app.provision.layout import Layout
from app.provision.service import systemd_unit
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import device_id, kitfleet, pair_body, raw_client

start_agent = integration.start_agent  # the fixtures, by name
settings = integration.settings
fleet = integration.fleet

CODE = "ABCD-EFGH"  # what the technician typed; the rogue never saw the kit's real code
MADE_UP_TOKEN = "kft_" + "made-up-by-the-rogue-" + "x" * 20
Confirm = Literal["none", "random", "reflected"]


# --- a rogue kit ------------------------------------------------------------------------------


class RogueKit(ThreadingHTTPServer):
    """A TLS server on 127.0.0.1 with its own self-signed certificate that says yes to any
    pairing: 200 with a made-up token, and a plausible /v1/health. `confirm` is what it sends
    where a real kit proves the code: nothing, random hex, or the app's own proof echoed."""

    daemon_threads = True

    def __init__(self, folder: Path, confirm: Confirm) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        identity = load_or_create(folder)  # the agent's own code makes its certificate
        super().__init__((LOOPBACK, 0), _RogueHandler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(identity.cert_path, identity.key_path)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.device_id, self.confirm = identity.device_id, confirm
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request seen
        self._thread = threading.Thread(target=self.serve_forever, name="rogue-kit", daemon=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def pair_answer(self, asked: dict[str, Any]) -> dict[str, Any]:
        answer = {
            "device_id": self.device_id,
            "name": "rogue",
            "token": MADE_UP_TOKEN,
            "token_id": "0123456789abcdef",
            "scope": asked.get("scope", "admin"),
        }
        if self.confirm == "random":
            answer |= {"kit_nonce": secrets.token_hex(16), "confirm": secrets.token_hex(32)}
        elif self.confirm == "reflected":  # the only MAC it has seen under the pairing key
            answer |= {"kit_nonce": asked["nonce"], "confirm": asked["proof"]}
        return answer

    def __enter__(self) -> RogueKit:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _RogueHandler(BaseHTTPRequestHandler):
    server: RogueKit

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        self._json(
            {
                "status": "ok",
                "version": PACKAGE_VERSION,
                "api_version": "1",
                "device_id": self.server.device_id,
            }
        )

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(self.server.pair_answer(json.loads(body or b"{}")) if self.path == "/v1/pair" else {})

    def _json(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(params=["none", "random", "reflected"])
def rogue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RogueKit]:
    with RogueKit(tmp_path / "rogue", request.param) as server:
        yield server


def _inventory_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob(INVENTORY_FILE + "*")))


# --- 4. a rogue kit is not adopted -------------------------------------------------------------


def test_rogue_kit_at_an_address_is_refused_and_nothing_is_saved(rogue: RogueKit, fleet: Fleet) -> None:
    with pytest.raises(AdoptionRefused, match="did not prove it knows the pairing code"):
        asyncio.run(fleet.async_adopt(rogue.address, CODE))
    assert fleet.inventory.kits() == []
    assert MADE_UP_TOKEN.encode() not in _inventory_bytes(fleet.settings.home)
    [entry] = [e for e in fleet.audit.entries() if e.action == "kit.adopt"]
    assert entry.outcome == "refused"  # the laptop's own log does not call it adopted
    assert ("POST", "/v1/pair") in rogue.requests


def test_rogue_kit_is_refused_by_the_cli_by_address_and_by_its_announcement(
    rogue: RogueKit, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    by_address = kitfleet(home, "adopt", rogue.address, "--code", CODE)
    assert by_address.returncode == 1, by_address.stdout
    assert "did not prove it knows the pairing code" in by_address.stderr
    name = f"rogue-{secrets.token_hex(4)}"  # any process here may announce on loopback
    advertiser = Advertiser(
        TxtRecord(device_id=rogue.device_id, name=name, kit_model="Test kit", agent_version=PACKAGE_VERSION),
        rogue.port,
        [LOOPBACK],
    )
    advertiser.start()
    try:
        announced = kitfleet(home, "adopt", name, "--code", CODE)
    finally:
        advertiser.stop()
    assert announced.returncode == 1, announced.stdout
    assert "did not prove it knows the pairing code" in announced.stderr
    assert json.loads(kitfleet(home, "kits", "--json").stdout) == []
    assert MADE_UP_TOKEN.encode() not in _inventory_bytes(home)


def test_real_kit_proves_the_code_and_is_adopted(start_agent: AgentFactory, fleet: Fleet) -> None:
    agent = start_agent("real", mdns=False)
    kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
    assert [k.device_id for k in fleet.inventory.kits()] == [kit.device_id] == [device_id(agent)]
    assert asyncio.run(fleet.async_status(kit)).status == "online"
    [entry] = [e for e in fleet.audit.entries() if e.action == "kit.adopt"]
    assert entry.outcome == "ok"


def test_kit_answers_with_a_confirmation_only_the_code_could_make(start_agent: AgentFactory) -> None:
    from agent.wire import pair_confirm, pair_key

    agent = start_agent("confirms", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    body = pair_body(code, device, "operator")
    with raw_client(agent) as client:
        answer = client.post("/v1/pair", json=body).json()
    key = pair_key(code, device)
    expected = pair_confirm(
        key,
        device,
        body["app_id"],
        body["nonce"],
        answer["kit_nonce"],
        answer["token_id"],
        answer["scope"],
        answer["token"],
    )
    assert answer["confirm"] == expected
    assert answer["confirm"] != body["proof"]
    assert len(answer["kit_nonce"]) >= 32
    wrong = pair_confirm(
        pair_key("ZZZZ-ZZZZ", device),
        device,
        body["app_id"],
        body["nonce"],
        answer["kit_nonce"],
        answer["token_id"],
        answer["scope"],
        answer["token"],
    )
    assert answer["confirm"] != wrong


# --- 5. the kit's files are its own ------------------------------------------------------------


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder any local user may enter (pytest's tmp_path is not), so the test sees what a
    local user of the kit could read."""
    made = Path(tempfile.mkdtemp(prefix="kitfleet-modes-"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _read_as_nobody(path: Path) -> tuple[int, str]:
    """`cat` the file as the unprivileged user nobody: its exit status and what it said."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("reading as another user needs root and runuser (CI runs as root)")
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True, timeout=30, check=False
    )
    return done.returncode, done.stderr.decode(errors="replace")


def _assert_private(data: Path) -> None:
    assert _mode(data) == 0o700
    loose = {p.name: oct(_mode(p)) for p in data.iterdir() if not p.is_symlink() and _mode(p) & 0o077}
    assert loose == {}


def test_agent_repairs_a_loose_data_dir_at_start(open_dir: Path) -> None:
    data = open_dir / "kit"
    agent = LocalAgent(data, "loose", mdns=False).start()
    agent.pair_code()  # a live code: its key in agent.db is what a local user would be after
    agent.stop()
    # as an older provisioning left it: the dir and every file readable by all
    for path in [data, *data.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert _read_as_nobody(data / "agent.db")[0] == 0  # the attack works on such a kit
    agent.start()
    try:
        agent.pair_code()
        _assert_private(data)
        for name in ("agent.db", "agent.db-wal", "agent.db-shm", "identity.key", "agent.log"):
            assert _mode(data / name) == 0o600, name
        for name in ("models", "datasets", "jobs"):
            assert _mode(data / name) == 0o700, name
        status, said = _read_as_nobody(data / "agent.db")
        assert status != 0
        assert "Permission denied" in said
    finally:
        agent.stop()


def test_fresh_data_dir_is_made_private_whatever_the_umask(open_dir: Path) -> None:
    data = open_dir / "new" / "kit"
    old = os.umask(0o022)  # the usual login umask, inherited by the agent's command
    try:
        LocalAgent(data, "fresh", mdns=False).run_cli("pair-code")
    finally:
        os.umask(old)
    _assert_private(data)
    assert _mode(data / "agent.db") == 0o600
    assert _mode(data / "identity.key") == 0o600
    assert _read_as_nobody(data / "agent.db")[0] != 0


def test_service_and_provisioning_keep_the_data_dir_private(open_dir: Path) -> None:
    unit = systemd_unit("/opt/kitfleet-agent/venv/bin/kitfleet-agent", "/var/lib/kitfleet-agent")
    assert "\nUMask=0077\n" in unit
    data = open_dir / "provisioned"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # an earlier install made it open
    layout = Layout(root=str(open_dir / "root"), data_dir=str(data), service="user", run_as=None)
    subprocess.run(["sh", "-c", _mkdir_data(layout)], check=True, timeout=30)
    assert _mode(data) == 0o700
    fresh = open_dir / "other" / "data"
    subprocess.run(
        [
            "sh",
            "-c",
            _mkdir_data(
                Layout(root=str(open_dir / "root"), data_dir=str(fresh), service="user", run_as=None)
            ),
        ],
        check=True,
        timeout=30,
    )
    assert _mode(fresh) == 0o700


# --- 12. one stranger cannot lock pairing for everyone -----------------------------------------


def _from(address: str, agent: LocalAgent) -> httpx.Client:
    """A client whose connections leave from `address` (any of 127/8 reaches the agent)."""
    return httpx.Client(
        base_url=f"https://{agent.address}",
        timeout=10,
        transport=httpx.HTTPTransport(verify=False, local_address=address),
    )


def _wrong() -> dict[str, Any]:
    """A proof made without the code."""
    return {
        "app_id": "app-" + secrets.token_hex(8),
        "nonce": secrets.token_hex(16),
        "proof": secrets.token_hex(32),
        "scope": "admin",
    }


def test_a_stranger_locks_only_their_own_address(start_agent: AgentFactory) -> None:
    agent = start_agent("stranger", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    with _from("127.0.0.2", agent) as stranger:
        statuses = [stranger.post("/v1/pair", json=_wrong()).status_code for _ in range(6)]
        assert statuses == [403] * 5 + [429]
        locked = stranger.post("/v1/pair", json=pair_body(code, device))
        assert locked.status_code == 429, "the stranger's address stays locked, right code or not"
        assert "your address" in locked.json()["message"]
    with _from("127.0.0.1", agent) as technician:
        paired = technician.post("/v1/pair", json=pair_body(code, device, "operator"))
    assert paired.status_code == 200, paired.text


def test_forwarded_for_headers_are_not_believed(start_agent: AgentFactory) -> None:
    agent = start_agent("forwarded", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    with _from("127.0.0.2", agent) as stranger:
        for n in range(6):  # each one claims another origin, or the technician's address
            claimed = "127.0.0.1" if n % 2 else f"198.51.100.{n}"
            response = stranger.post(
                "/v1/pair",
                json=_wrong(),
                headers={"X-Forwarded-For": claimed, "X-Real-IP": claimed, "Forwarded": f"for={claimed}"},
            )
            assert response.status_code == (429 if n == 5 else 403), (n, response.text)
    with _from("127.0.0.1", agent) as technician:
        assert technician.post("/v1/pair", json=pair_body(code, device)).status_code == 200


def test_a_crowd_of_addresses_still_locks_pairing(start_agent: AgentFactory) -> None:
    agent = start_agent("crowd", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    for n in range(2, 12):  # ten addresses, five wrong proofs each: the global ceiling
        with _from(f"127.0.0.{n}", agent) as client:
            for _ in range(5):
                assert client.post("/v1/pair", json=_wrong()).status_code == 403
    with _from("127.0.0.1", agent) as technician:
        locked = technician.post("/v1/pair", json=pair_body(code, device))
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "several addresses" in locked.json()["message"]


# --- 13. operator by default; admin when asked; the laptop's tokens are its owner's ------------


def test_adoption_gives_the_operator_scope_by_default(start_agent: AgentFactory, fleet: Fleet) -> None:
    agent = start_agent("operator", mdns=False)
    kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
    assert kit.scope == "operator"
    with raw_client(agent, kit.token) as client:
        assert client.get("/v1/facts").status_code == 200
        assert client.get("/v1/tokens").status_code == 403  # admin only
        command = client.post("/v1/jobs", json={"kind": "command", "params": {"argv": ["/bin/true"]}})
        assert (command.status_code, command.json()["error"]) == (403, "insufficient_scope")


def test_admin_scope_only_when_the_technician_asks(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("admin", mdns=False)
    home = tmp_path / "home"
    adopted = kitfleet(
        home, "adopt", agent.address, "--code", agent.pair_code(), "--scope", "admin", "--json"
    )
    assert adopted.returncode == 0, adopted.stderr
    assert json.loads(adopted.stdout)["scope"] == "admin"
    other = start_agent("plain", mdns=False)
    plain = kitfleet(home, "adopt", other.address, "--code", other.pair_code(), "--json")
    assert json.loads(plain.stdout)["scope"] == "operator"
    inventory = Inventory(home)
    try:
        kits = {k.name: k for k in inventory.kits()}
    finally:
        inventory.close()
    assert {name: k.scope for name, k in kits.items()} == {"admin": "admin", "plain": "operator"}
    with raw_client(agent, kits["admin"].token) as client:
        assert client.get("/v1/tokens").status_code == 200


def test_inventory_and_home_are_readable_by_their_owner_only(
    open_dir: Path, start_agent: AgentFactory
) -> None:
    home = open_dir / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    first = Fleet(AppSettings.resolve(home=home, mdns_interfaces=[LOOPBACK]))
    first.close()
    (home / INVENTORY_FILE).chmod(0o644)  # e.g. restored from a backup by another tool
    agent = start_agent("owned", mdns=False)
    opened = Fleet(AppSettings.resolve(home=home, mdns_interfaces=[LOOPBACK]))
    try:
        asyncio.run(opened.async_adopt(agent.address, agent.pair_code()))
        files = sorted(home.glob(INVENTORY_FILE + "*"))
        assert {p.name for p in files} >= {INVENTORY_FILE, INVENTORY_FILE + "-wal", INVENTORY_FILE + "-shm"}
        assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
        assert _mode(home) == 0o700
        status, said = _read_as_nobody(home / INVENTORY_FILE)
        assert status != 0
        assert "Permission denied" in said
    finally:
        opened.close()


# --- the app's bundle-signing key rides on the proof ---------------------------------------------


def _signer_b64() -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _with_signer(code: str, device: str, signer: str, proven: str | None) -> dict[str, Any]:
    """A pairing body carrying `signer`, its proof computed over `proven` (None: the v1 proof)."""
    from agent.wire import pair_key, pair_proof

    body = pair_body(code, device, "operator")
    body["proof"] = pair_proof(pair_key(code, device), device, body["app_id"], body["nonce"], proven)
    return body | {"signer_public_key": signer}


def test_a_signer_key_swapped_on_the_way_is_refused(start_agent: AgentFactory) -> None:
    """Someone between the app and the kit (who cannot make a proof: no code) swaps the app's
    bundle key for theirs, or adds one to a keyless request: the proof no longer verifies, so the
    kit trusts no key of theirs; the app's own request with the key it proved is then accepted."""
    agent = start_agent("signer-bound", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    genuine, stranger = _signer_b64(), _signer_b64()
    with raw_client(agent) as client:
        swapped = client.post("/v1/pair", json=_with_signer(code, device, stranger, genuine))
        added = client.post("/v1/pair", json=_with_signer(code, device, stranger, None))
        accepted = client.post("/v1/pair", json=_with_signer(code, device, genuine, genuine))
        assert accepted.status_code == 200, accepted.text
        token = accepted.json()["token"]
        trusted = client.get("/v1/signers", headers={"Authorization": f"Bearer {token}"}).json()
    for refused in (swapped, added):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "pairing_code_wrong"
    assert [s["public_key"] for s in trusted] == [genuine], trusted


def test_an_older_app_that_sends_no_signer_key_still_pairs(start_agent: AgentFactory) -> None:
    agent = start_agent("keyless-app", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    with raw_client(agent) as client:
        answer = client.post("/v1/pair", json=pair_body(code, device, "operator"))
        assert answer.status_code == 200, answer.text
        trusted = client.get(
            "/v1/signers", headers={"Authorization": f"Bearer {answer.json()['token']}"}
        ).json()
    assert trusted == []
