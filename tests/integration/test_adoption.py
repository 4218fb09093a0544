"""Discovery over real mDNS on 127.0.0.1, adoption with a pairing code, identity pinning."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time

import pytest

from app.fleet.errors import AgentError, IdentityChanged
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory, free_port
from tests.integration.helpers import device_id, kitfleet, pair_body, raw_client


def test_discover_adopt_and_read_facts_from_the_cli(start_agent: AgentFactory, tmp_path) -> None:
    agent = start_agent("cli-kit", kit_model="Fly-away kit")
    home = tmp_path / "home"
    found = kitfleet(home, "discover", "--timeout", "2", "--json")
    assert found.returncode == 0, found.stderr
    row = next(r for r in json.loads(found.stdout) if r["name"] == "cli-kit")
    assert row["status"] == "unadopted"
    assert row["device_id"] == device_id(agent)
    assert row["kit_model"] == "Fly-away kit"
    assert row["address"] == agent.address

    adopted = kitfleet(home, "adopt", "cli-kit", "--code", agent.pair_code())
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted cli-kit" in adopted.stdout

    again = json.loads(kitfleet(home, "discover", "--timeout", "2", "--json").stdout)
    assert next(r for r in again if r["name"] == "cli-kit")["status"] == "adopted"
    kits = json.loads(kitfleet(home, "kits", "--json").stdout)
    assert [(k["name"], k["status"]) for k in kits] == [("cli-kit", "online")]
    facts = kitfleet(home, "facts", device_id(agent)[:8], "--json")
    assert facts.returncode == 0, facts.stderr
    data = json.loads(facts.stdout)
    assert data["live"] is True
    assert data["families"]["cpu"]["logical_cores"] >= 1
    assert data["families"]["memory"]["total_bytes"] > 0  # --json: the raw figures
    favoured = {p["provider"]: p["precision"] for p in data["families"]["runtime"]["precision_by_provider"]}
    assert favoured["CPUExecutionProvider"] == (
        "int8" if data["families"]["cpu"]["int8"]["accelerated"] else "fp32"
    )
    text = kitfleet(home, "facts", "cli-kit")
    assert "[cpu]" in text.stdout
    assert "[runtime]" in text.stdout
    assert text.stdout.startswith("cli-kit: facts read ")
    assert "ago)" in text.stdout.splitlines()[0]
    assert re.search(r"^  total: [0-9.]+ [GMT]iB$", text.stdout, re.MULTILINE)
    assert re.search(r"^  CPUExecutionProvider +(int8|fp32) ", text.stdout, re.MULTILINE)
    assert str(data["families"]["memory"]["total_bytes"]) not in text.stdout


def test_unknown_kit_is_a_message_and_a_nonzero_exit(tmp_path) -> None:
    result = kitfleet(tmp_path / "home", "facts", "no-such-kit")
    assert result.returncode != 0
    assert "no kit called 'no-such-kit'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_kit_shows_offline_with_last_known_facts(start_agent: AgentFactory, tmp_path) -> None:
    agent = start_agent("away-kit", mdns=False)
    home = tmp_path / "home"
    assert kitfleet(home, "adopt", agent.address, "--code", agent.pair_code()).returncode == 0
    assert kitfleet(home, "facts", "away-kit").returncode == 0
    agent.stop()
    kits = json.loads(kitfleet(home, "kits", "--json").stdout)
    assert kits[0]["status"] == "offline"
    assert kits[0]["last_seen_at"] is not None
    facts = kitfleet(home, "facts", "away-kit")
    assert facts.returncode == 0, facts.stderr
    assert "away-kit is offline; last-known facts from" in facts.stdout
    assert "[cpu]" in facts.stdout
    assert json.loads(kitfleet(home, "facts", "away-kit", "--json").stdout)["live"] is False


def test_wrong_used_and_expired_codes_are_refused(start_agent: AgentFactory, fleet: Fleet) -> None:
    agent = start_agent("codes", mdns=False)
    code = agent.pair_code()
    with pytest.raises(AgentError, match="pairing code is wrong"):
        asyncio.run(fleet.async_adopt(agent.address, "ZZZZ-ZZZZ"))
    asyncio.run(fleet.async_adopt(agent.address, code))
    with pytest.raises(AgentError, match="no active pairing code"):
        asyncio.run(fleet.async_adopt(agent.address, code))
    short = agent.pair_code(ttl=0.5)
    time.sleep(0.8)
    with pytest.raises(AgentError, match="expired"):
        asyncio.run(fleet.async_adopt(agent.address, short))


def test_five_wrong_codes_lock_pairing_out(start_agent: AgentFactory) -> None:
    agent = start_agent("lockout", mdns=False)
    code, device = agent.pair_code(), device_id(agent)
    with raw_client(agent) as client:
        for _ in range(5):
            assert client.post("/v1/pair", json=pair_body("WRONGWRO", device)).status_code == 403
        locked = client.post("/v1/pair", json=pair_body(code, device))
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert "locked" in locked.json()["message"]


def test_identity_change_is_flagged_and_no_token_is_sent(
    start_agent: AgentFactory, fleet: Fleet, tmp_path
) -> None:
    port = free_port()
    agent = start_agent("reborn", mdns=False, port=port)
    kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
    assert asyncio.run(fleet.async_status(kit)).status == "online"
    agent.stop()
    agent.run_cli("identity", "--regenerate")
    agent.start()
    db = sqlite3.connect(agent.data_dir / "agent.db")
    used_before = db.execute("SELECT last_used_at FROM tokens").fetchone()[0]

    status = asyncio.run(fleet.async_status(kit))
    assert status.status == "identity_changed"
    assert "identity changed" in status.detail
    assert fleet.inventory.get(kit.device_id).state == "identity_changed"
    with pytest.raises(IdentityChanged):
        asyncio.run(fleet.async_facts(fleet.inventory.get(kit.device_id)))
    assert db.execute("SELECT last_used_at FROM tokens").fetchone()[0] == used_before
    listed = json.loads(kitfleet(fleet.settings.home, "kits", "--json").stdout)
    assert listed[0]["status"] == "identity_changed"


def test_adoption_refuses_an_announcement_that_does_not_match_the_certificate(
    start_agent: AgentFactory, fleet: Fleet
) -> None:
    """A kit whose TXT claims another device ID than its certificate is not adopted."""
    from app.fleet.discovery import Announcement
    from app.fleet.errors import AdoptionRefused

    agent = start_agent("liar", mdns=False)
    fake = Announcement("x", "ab" * 32, "liar", "", "1", "", (agent.host,), agent.port)

    async def adopt() -> None:
        async def found(ref: str, timeout: float) -> Announcement:
            return fake

        fleet._find_target = found  # type: ignore[method-assign]
        await fleet.async_adopt("liar", agent.pair_code())

    with pytest.raises(AdoptionRefused, match="impostor"):
        asyncio.run(adopt())


def test_sigterm_withdraws_the_announcement(start_agent: AgentFactory, fleet: Fleet) -> None:
    from app.fleet.discovery import Browser

    agent = start_agent("goodbye")

    async def watch() -> list[str]:
        events: list[str] = []
        seen, gone = asyncio.Event(), asyncio.Event()

        def listener(name: str, announcement: object) -> None:
            if "goodbye" in name:
                events.append("added" if announcement else "removed")
                (seen if announcement else gone).set()

        browser = Browser(["127.0.0.1"], listener)
        await browser.async_start()
        try:
            await asyncio.wait_for(seen.wait(), 10)
            await asyncio.to_thread(agent.stop)
            await asyncio.wait_for(gone.wait(), 10)
        finally:
            await browser.async_close()
        return events

    assert asyncio.run(watch())[-1] == "removed"
