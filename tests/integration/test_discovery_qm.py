"""mDNS questions that want multicast answers (QM), so a kit is found where other mDNS programs
share port 5353 (issue 19).

A unicast answer (to a QU question, zeroconf's default first question and probe) reaches only
one of the sockets bound to port 5353 on a host: with avahi or another agent beside the app it
is often not the app's, and the kit is listed a query round (~1 s) later; an agent's probe could
miss the defender of a taken name. Here another program's socket sits on 5353 in the mDNS group
(loopback only, receiving only) and reads every question asked: each about kitfleet, from the
app's browser and from the agent's probes, must ask for a multicast answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from zeroconf._protocol.incoming import DNSIncoming  # re-exported by zeroconf, not in __all__

from agent.wire import SERVICE_TYPE
from app.fleet.discovery import async_discover
from app.fleet.localagent import LOOPBACK
from tests.integration.conftest import AgentFactory
from tests.integration.mdns_sockets import receiving


@contextlib.contextmanager
def other_program_on_5353() -> Iterator[list[bytes]]:
    """Another mDNS program's socket on port 5353, in the group on loopback only; yields the
    packets it receives until the block ends. It never sends."""
    packets: list[bytes] = []
    with receiving(lambda data, _: packets.append(data), "other-mdns-program"):
        yield packets


def _kitfleet_questions(packets: list[bytes], instance: str) -> list[tuple[str, bool, bool]]:
    """(name, asks for a unicast answer, is a probe) of each question about kitfleet or `instance`."""
    asked = []
    for data in packets:
        incoming = DNSIncoming(data)
        if not incoming.valid or not incoming.is_query():
            continue
        probe = incoming.is_probe()  # it carries the records it wants to claim
        asked += [
            (q.name, q.unicast, probe)
            for q in incoming.questions
            if q.name.lower() in (SERVICE_TYPE.lower(), instance.lower())
        ]
    return asked


def test_the_browser_and_the_agents_probes_ask_for_multicast_answers(start_agent: AgentFactory) -> None:
    """The agent's probes ask QM: a defender's unicast answer could land on another program's
    socket and a taken name look free. The browser asks QM too; its one-shot question, from a
    port of its own, is answered to that port (test_discovery_one_shot.py)."""
    with other_program_on_5353() as packets:
        agent = start_agent("crowded-kit")
        found = asyncio.run(async_discover([LOOPBACK], 10.0, stop_when=lambda a: a.name == agent.name))
    listed = [a for a in found if a.name == agent.name]
    assert listed, "the running kit was not discovered"
    asked = _kitfleet_questions(packets, listed[0].instance)
    assert any(probe for _, _, probe in asked), "the agent's probes were not heard"
    assert any(not probe for _, _, probe in asked), "the browser's questions were not heard"
    assert [(name, probe) for name, unicast, probe in asked if unicast] == []
