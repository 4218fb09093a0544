"""The browser's one-shot question (RFC 6762 section 5.1, app/fleet/mdns_ask.py).

A responder that holds back its multicast answers (it multicast them less than a second ago:
a kit that just moved) still answers a question from a port other than 5353, at once and by
unicast to that port. Here a responder on loopback answers only such questions, so the kit is
found through the one-shot question or not at all; answers that are not to our question (a
wrong ID, a port other than 5353) must be dropped. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest
from zeroconf import ServiceInfo
from zeroconf._protocol.incoming import DNSIncoming  # re-exported by zeroconf, not in __all__
from zeroconf._protocol.outgoing import DNSOutgoing

from agent.wire import SERVICE_TYPE, TxtRecord
from app.fleet import discovery
from app.fleet.discovery import async_discover
from app.fleet.localagent import LOOPBACK
from tests.integration.mdns_sockets import MDNS_PORT, receiving

DEVICE_ID = "ab" * 32
RESPONSE_AA = 0x8400


def _kit_records(port: int) -> ServiceInfo:
    txt = TxtRecord(device_id=DEVICE_ID, name="quiet-kit", agent_version="9.9.9")
    return ServiceInfo(
        SERVICE_TYPE,
        f"quiet-kit.{SERVICE_TYPE}",
        port=port,
        properties=txt.to_properties(),
        server="quiet-kit.local.",
        parsed_addresses=[LOOPBACK],
    )


def _answer(query: DNSIncoming, info: ServiceInfo, answer_id: int) -> bytes:
    out = DNSOutgoing(RESPONSE_AA, multicast=False, id_=answer_id)
    for question in query.questions:
        out.add_question(question)
    for record in (info.dns_pointer(), info.dns_service(), info.dns_text(), *info.dns_addresses()):
        out.add_answer_at_time(record, 0)
    [packet] = out.packets()
    return packet


@contextlib.contextmanager
def one_shot_responder(id_offset: int = 0, reply_port: int = MDNS_PORT) -> Iterator[list[int]]:
    """A responder on loopback that answers only one-shot questions (from a port other than
    5353) about kitfleet, from `reply_port`, with the question's ID plus `id_offset`. Yields
    the source ports of the questions it answered. It never multicasts."""
    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    reply.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reply.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reply.bind((LOOPBACK, reply_port))
    info = _kit_records(port=8765)
    answered: list[int] = []

    def answer(data: bytes, sender: tuple[str, int]) -> None:
        query = DNSIncoming(data)
        asks = query.valid and query.is_query() and any(q.name == SERVICE_TYPE for q in query.questions)
        if asks and sender[1] != MDNS_PORT:
            reply.sendto(_answer(query, info, (query.id + id_offset) & 0xFFFF), sender)
            answered.append(sender[1])

    try:
        with receiving(answer, "one-shot-responder"):
            yield answered
    finally:
        reply.close()


def _discover(timeout: float = 2.5) -> list[discovery.Announcement]:
    return asyncio.run(async_discover([LOOPBACK], timeout, stop_when=lambda a: a.device_id == DEVICE_ID))


def test_a_kit_holding_back_its_multicast_answers_is_found_by_the_one_shot_question() -> None:
    with one_shot_responder() as answered:
        found = _discover()
    assert answered, "the responder heard no one-shot question"
    [kit] = [a for a in found if a.device_id == DEVICE_ID]
    assert (kit.name, kit.host, kit.port, kit.agent_version) == ("quiet-kit", LOOPBACK, 8765, "9.9.9")


def test_without_the_one_shot_question_such_a_kit_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The responder above is only reachable through the one-shot question: the test above
    would pass for no reason if the browser found it another way."""
    monkeypatch.setattr(discovery, "ASK_ONCE", False)
    with one_shot_responder() as answered:
        found = _discover(timeout=1.5)
    assert not answered
    assert not [a for a in found if a.device_id == DEVICE_ID]


@pytest.mark.parametrize(
    ("id_offset", "reply_port"),
    [(1, MDNS_PORT), (0, 0)],
    ids=["another question's ID", "not from port 5353"],
)
def test_answers_that_are_not_to_our_question_are_dropped(id_offset: int, reply_port: int) -> None:
    with one_shot_responder(id_offset, reply_port) as answered:
        found = _discover(timeout=1.5)
    assert answered, "the responder heard no one-shot question"
    assert not [a for a in found if a.device_id == DEVICE_ID]
