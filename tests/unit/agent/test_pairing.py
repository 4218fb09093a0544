"""One-time pairing codes against a real database, with a fake clock instead of sleeps."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

import pytest

from agent.api.errors import status_of
from agent.auth import pairing
from agent.db import Database
from agent.errors import Refusal
from agent.wire import (
    PAIR_CODE_ALPHABET,
    PAIR_CODE_LENGTH,
    PairRequest,
    pair_confirm,
    pair_key,
    pair_proof,
)

DEVICE_ID = hashlib.sha256(b"the kit's certificate").hexdigest()
OTHER_DEVICE_ID = hashlib.sha256(b"an impostor's certificate").hexdigest()
APP_ID = "app-" + "5" * 32
NONCE = "6" * 32
WRONG_PROOF = "0" * 64
CLIENT = "192.0.2.10"  # the technician's laptop


class Clock:
    """Stands in for the `time` module inside `agent.auth.pairing`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_700_000_000.0)
    monkeypatch.setattr(pairing, "time", fake)
    return fake


def request_for(code: str, device_id: str = DEVICE_ID) -> PairRequest:
    """What an app sends after the technician typed `code` and saw `device_id` in TLS."""
    proof = pair_proof(pair_key(code, device_id), device_id, APP_ID, NONCE)
    return PairRequest(app_id=APP_ID, nonce=NONCE, proof=proof)


def wrong_request() -> PairRequest:
    return PairRequest(app_id=APP_ID, nonce=NONCE, proof=WRONG_PROOF)


def refusal(db: Database, request: PairRequest, client: str = CLIENT) -> Refusal:
    with pytest.raises(Refusal) as caught:
        pairing.verify(db, DEVICE_ID, request, client)
    return caught.value


def lock_row(db: Database, client: str = CLIENT) -> tuple[int, int, float]:
    """One address's count of wrong proofs, lock-outs and lock end (zeros when unknown)."""
    rows = db.query(
        "SELECT failures, lockouts, locked_until FROM pairing_clients WHERE client = ?", (client,)
    )
    return (rows[0]["failures"], rows[0]["lockouts"], rows[0]["locked_until"]) if rows else (0, 0, 0.0)


def lock_out(db: Database, clock: Clock, client: str = CLIENT) -> float:
    """Send wrong proofs from `client` until it is locked; returns the back-off it set."""
    for _ in range(pairing.MAX_FAILURES):
        assert refusal(db, wrong_request(), client).error == "pairing_code_wrong"
    return lock_row(db, client)[2] - clock.now


def test_new_code_is_drawn_from_the_alphabet(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    assert len(code.code) == PAIR_CODE_LENGTH
    assert set(code.code) <= set(PAIR_CODE_ALPHABET)
    assert code.display == f"{code.code[:4]}-{code.code[4:]}"
    assert code.expires_at == clock.now + 60.0


@pytest.mark.parametrize("ttl_s", [0.0, -1.0])
def test_new_code_rejects_a_lifetime_that_is_not_positive(db: Database, ttl_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        pairing.new_code(db, DEVICE_ID, ttl_s=ttl_s)


def test_fresh_code_verifies_once_then_is_consumed(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)
    again = refusal(db, request_for(code.code))
    assert (status_of(again), again.error) == (403, "no_pairing_code")


def test_code_typed_lower_case_with_a_dash_verifies(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    pairing.verify(db, DEVICE_ID, request_for(code.display.lower()), CLIENT)


def test_new_code_replaces_the_earlier_one(db: Database, clock: Clock) -> None:
    first = pairing.new_code(db, DEVICE_ID)
    second = pairing.new_code(db, DEVICE_ID)
    assert refusal(db, request_for(first.code)).error == "pairing_code_wrong"
    pairing.verify(db, DEVICE_ID, request_for(second.code), CLIENT)


def test_wrong_proof_is_refused_and_counted(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    error = refusal(db, wrong_request())
    assert (status_of(error), error.error) == (403, "pairing_code_wrong")
    assert error.hint
    assert lock_row(db)[:2] == (1, 0)


def test_wrong_proof_leaves_the_code_usable(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    refusal(db, wrong_request())
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


def test_proof_made_for_another_device_is_refused(db: Database, clock: Clock) -> None:
    """A man in the middle shows the app his own certificate; that proof fails on the kit."""
    code = pairing.new_code(db, DEVICE_ID)
    error = refusal(db, request_for(code.code, device_id=OTHER_DEVICE_ID))
    assert (status_of(error), error.error) == (403, "pairing_code_wrong")
    assert lock_row(db)[0] == 1


def test_five_failures_lock_that_address_even_for_the_right_code(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    backoff = lock_out(db, clock)
    assert backoff == pairing.BASE_LOCKOUT_S
    error = refusal(db, request_for(code.code))
    assert (status_of(error), error.error) == (429, "pairing_locked")
    retry_after = int(error.retry_after or 0)
    assert backoff <= retry_after <= backoff + 1


def test_retry_after_counts_down_while_locked(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock)
    clock.now += 20.0
    retry_after = int(refusal(db, wrong_request()).retry_after or 0)
    assert 0 < retry_after <= pairing.BASE_LOCKOUT_S - 20.0 + 1


def test_attempts_while_locked_do_not_extend_the_lock(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock)
    before = lock_row(db)
    for _ in range(pairing.MAX_FAILURES):
        assert status_of(refusal(db, wrong_request())) == 429
    assert lock_row(db) == before


def test_lock_lifts_when_the_back_off_has_passed(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    backoff = lock_out(db, clock)
    clock.now += backoff + 0.001
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


def test_back_off_doubles_with_each_lock_out_and_is_capped(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID, ttl_s=1e9)
    backoffs = []
    for _ in range(9):
        backoffs.append(lock_out(db, clock))
        clock.now += backoffs[-1] + 0.001
    assert backoffs[:4] == [30.0, 60.0, 120.0, 240.0]
    assert all(
        later == min(2 * earlier, pairing.MAX_LOCKOUT_S) for earlier, later in itertools.pairwise(backoffs)
    )
    assert backoffs[-2:] == [pairing.MAX_LOCKOUT_S, pairing.MAX_LOCKOUT_S]


def test_success_resets_failures_and_lock_outs(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=1e6)
    clock.now += lock_out(db, clock) + 0.001
    refusal(db, wrong_request())
    assert lock_row(db)[:2] == (1, 1)
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)
    assert lock_row(db)[:2] == (0, 0)
    pairing.new_code(db, DEVICE_ID)
    assert lock_out(db, clock) == pairing.BASE_LOCKOUT_S


def test_expired_code_is_refused(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 60.0
    error = refusal(db, request_for(code.code))
    assert (status_of(error), error.error) == (403, "pairing_code_expired")
    assert lock_row(db)[0] == 0


def test_code_still_verifies_just_before_it_expires(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 59.0
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


def test_expired_code_is_discarded(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 61.0
    refusal(db, wrong_request())
    assert db.query("SELECT COUNT(*) FROM pairing_code")[0][0] == 0


def test_no_code_made_is_refused(db: Database, clock: Clock) -> None:
    error = refusal(db, wrong_request())
    assert (status_of(error), error.error) == (403, "no_pairing_code")


def test_only_a_derived_key_is_stored(db: Database, db_bytes: Callable[[], bytes], clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    key = db.query("SELECT key FROM pairing_code WHERE id = 1")[0]["key"]
    assert key == pair_key(code.code, DEVICE_ID)
    on_disk = db_bytes()
    assert on_disk
    assert code.code.encode() not in on_disk
    assert code.display.encode() not in on_disk


def test_a_locked_address_does_not_lock_the_others(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock, client="198.51.100.7")
    locked = refusal(db, request_for(code.code), client="198.51.100.7")
    assert (status_of(locked), locked.error) == (429, "pairing_locked")
    assert "your address (198.51.100.7)" in locked.message
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


def test_success_keeps_the_strangers_lock(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock, client="198.51.100.7")
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)
    assert lock_row(db, "198.51.100.7")[1] == 1


def test_a_crowd_of_addresses_locks_everyone(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    crowd = [
        f"203.0.113.{n // (pairing.MAX_FAILURES - 1)}"  # each stays below its own limit
        for n in range(pairing.GLOBAL_MAX_FAILURES)
    ]
    for address in crowd:
        assert status_of(refusal(db, wrong_request(), address)) == 403
    assert all(lock_row(db, a)[2] == 0.0 for a in crowd)
    error = refusal(db, request_for(code.code))
    assert (status_of(error), error.error) == (429, "pairing_locked")
    assert "several addresses" in error.message
    assert 0 < int(error.retry_after or 0) <= pairing.BASE_LOCKOUT_S + 1
    clock.now += pairing.BASE_LOCKOUT_S + 0.001
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


def test_the_global_ceiling_counts_within_its_window(db: Database, clock: Clock) -> None:
    """Wrong proofs spread thinner than the ceiling per window never lock everyone."""
    code = pairing.new_code(db, DEVICE_ID, ttl_s=1e9)
    for window in range(3):
        for n in range(pairing.GLOBAL_MAX_FAILURES - 1):
            refusal(db, wrong_request(), f"203.0.{window}.{n}")
        clock.now += pairing.GLOBAL_WINDOW_S
    pairing.verify(db, DEVICE_ID, request_for(code.code), CLIENT)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # one host may hold its whole /64
        ("", "unknown"),
    ],
)
def test_failures_are_counted_per_ipv4_address_or_ipv6_64(host: str, key: str) -> None:
    assert pairing.client_key(host) == key


def test_remembered_addresses_are_bounded(
    db: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pairing, "MAX_CLIENTS", 3)
    pairing.new_code(db, DEVICE_ID, ttl_s=1e9)
    for n in range(5):
        clock.now += 1
        refusal(db, wrong_request(), f"198.51.100.{n}")
    kept = [r["client"] for r in db.query("SELECT client FROM pairing_clients ORDER BY client")]
    assert kept == ["198.51.100.2", "198.51.100.3", "198.51.100.4"]
    clock.now += pairing.FORGET_CLIENT_S + 1
    refusal(db, wrong_request(), "198.51.100.9")
    assert [r["client"] for r in db.query("SELECT client FROM pairing_clients")] == ["198.51.100.9"]


def test_the_kit_confirms_with_the_key_the_proof_was_made_with(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    request = request_for(code.code)
    key = pairing.verify(db, DEVICE_ID, request, CLIENT)
    assert key == pair_key(code.code, DEVICE_ID)
    kit_nonce, confirm = pairing.confirmation(key, DEVICE_ID, request, "tok-id", "operator", "kft_x")
    assert confirm == pair_confirm(key, DEVICE_ID, APP_ID, NONCE, kit_nonce, "tok-id", "operator", "kft_x")
    assert kit_nonce != pairing.confirmation(key, DEVICE_ID, request, "tok-id", "operator", "kft_x")[0]
