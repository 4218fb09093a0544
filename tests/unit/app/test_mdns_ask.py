"""Where the one-shot mDNS question is asked: only on the addresses it was given (network safety)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.fleet import mdns_ask


class _Zeroconf:
    """Stands in for zeroconf: nothing here may reach it."""


def _asked_on(monkeypatch: pytest.MonkeyPatch, interfaces: list[str]) -> list[str]:
    opened: list[str] = []
    real = mdns_ask._socket

    def recording(address: str) -> socket.socket:
        opened.append(address)
        return real(address)

    monkeypatch.setattr(mdns_ask, "_socket", recording)
    asyncio.run(mdns_ask.async_ask_once(_Zeroconf(), "_none._tcp.local.", interfaces, listen_s=0))  # type: ignore[arg-type]
    return opened


def test_the_question_goes_out_on_the_given_ipv4_addresses_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _asked_on(monkeypatch, ["127.0.0.1", "::1"]) == ["127.0.0.1"]


def test_ipv6_addresses_alone_never_mean_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty list means every interface (field use); a list of IPv6 addresses does not."""
    assert _asked_on(monkeypatch, ["::1"]) == []
