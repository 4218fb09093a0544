"""The pure helpers of the wire contract: pairing-code handling and device IDs."""

from __future__ import annotations

import hashlib
import re

import pytest

from agent.wire import (
    TxtRecord,
    device_id_from_der,
    format_device_id,
    normalise_pair_code,
    pair_key,
    pair_proof,
)

DEVICE_ID = hashlib.sha256(b"certificate").hexdigest()


@pytest.mark.parametrize(
    "typed",
    ["ABCDEFGH", "abcdefgh", "abcd-efgh", "ABCD EFGH", " abcd - efgh\n", "a-b-c-d-e-f-g-h"],
)
def test_normalise_pair_code_accepts_what_a_technician_types(typed: str) -> None:
    assert normalise_pair_code(typed) == "ABCDEFGH"


def test_pair_key_is_the_same_for_any_typing_of_the_code() -> None:
    assert pair_key("abcd-efgh", DEVICE_ID) == pair_key("ABCDEFGH", DEVICE_ID)


def test_pair_key_is_bound_to_the_device_id() -> None:
    key = pair_key("ABCDEFGH", DEVICE_ID)
    assert len(key) == 32
    assert key != pair_key("ABCDEFGH", hashlib.sha256(b"other").hexdigest())
    assert b"ABCDEFGH" not in key


def test_pair_proof_is_hex_and_depends_on_every_input() -> None:
    key = b"k" * 32
    proof = pair_proof(key, DEVICE_ID, "app-1234", "nonce" * 4)
    assert re.fullmatch("[0-9a-f]{64}", proof)
    variants = {
        pair_proof(b"K" * 32, DEVICE_ID, "app-1234", "nonce" * 4),
        pair_proof(key, DEVICE_ID[::-1], "app-1234", "nonce" * 4),
        pair_proof(key, DEVICE_ID, "app-5678", "nonce" * 4),
        pair_proof(key, DEVICE_ID, "app-1234", "other" * 4),
        pair_proof(key, DEVICE_ID, "app-1234", "nonce" * 4, "A" * 43 + "="),
        pair_proof(key, DEVICE_ID, "app-1234", "nonce" * 4, "B" * 43 + "="),
    }
    assert proof not in variants
    assert len(variants) == 6


def test_device_id_is_the_sha256_of_the_der_certificate() -> None:
    der = b"\x30\x82 not really a certificate"
    assert device_id_from_der(der) == hashlib.sha256(der).hexdigest()


def test_format_device_id_groups_the_start_in_upper_case() -> None:
    shown = format_device_id(DEVICE_ID)
    assert re.fullmatch("[0-9A-F]{4}(-[0-9A-F]{4}){3}", shown)
    assert shown.replace("-", "").lower() == DEVICE_ID[:16]


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_format_device_id_shows_the_groups_asked_for(groups: int) -> None:
    assert format_device_id(DEVICE_ID, groups=groups).count("-") == groups - 1


def test_txt_record_round_trips_through_mdns_properties() -> None:
    record = TxtRecord(device_id=DEVICE_ID, name="kit-7", kit_model="Jetson", agent_version="0.1.0")
    props: dict[bytes, bytes | None] = {
        key.encode(): value.encode() for key, value in record.to_properties().items()
    }
    assert TxtRecord.from_properties(props) == record


def test_txt_record_tolerates_missing_properties() -> None:
    record = TxtRecord.from_properties({b"id": DEVICE_ID.encode(), b"model": None})
    assert (record.device_id, record.name, record.kit_model) == (DEVICE_ID, "", "")
