"""One-time pairing codes against a real database, with a fake clock instead of sleeps."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

import pytest

from agent.api.schemas import PAIR_CODE_ALPHABET, PAIR_CODE_LENGTH, PairRequest, pair_key, pair_proof
from agent.auth import pairing
from agent.db import Database
from agent.errors import ApiError

DEVICE_ID = hashlib.sha256(b"the kit's certificate").hexdigest()
OTHER_DEVICE_ID = hashlib.sha256(b"an impostor's certificate").hexdigest()
APP_ID = "app-" + "5" * 32
NONCE = "6" * 32
WRONG_PROOF = "0" * 64


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


def refusal(db: Database, request: PairRequest) -> ApiError:
    with pytest.raises(ApiError) as caught:
        pairing.verify(db, DEVICE_ID, request)
    return caught.value


def lock_row(db: Database) -> tuple[int, int, float]:
    row = db.query("SELECT failures, lockouts, locked_until FROM pairing_lock WHERE id = 1")[0]
    return row["failures"], row["lockouts"], row["locked_until"]


def lock_out(db: Database, clock: Clock) -> float:
    """Send wrong proofs until pairing locks; returns the back-off it set."""
    for _ in range(pairing.MAX_FAILURES):
        assert refusal(db, wrong_request()).error == "pairing_code_wrong"
    return lock_row(db)[2] - clock.now


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
    pairing.verify(db, DEVICE_ID, request_for(code.code))
    again = refusal(db, request_for(code.code))
    assert (again.status, again.error) == (403, "no_pairing_code")


def test_code_typed_lower_case_with_a_dash_verifies(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    pairing.verify(db, DEVICE_ID, request_for(code.display.lower()))


def test_new_code_replaces_the_earlier_one(db: Database, clock: Clock) -> None:
    first = pairing.new_code(db, DEVICE_ID)
    second = pairing.new_code(db, DEVICE_ID)
    assert refusal(db, request_for(first.code)).error == "pairing_code_wrong"
    pairing.verify(db, DEVICE_ID, request_for(second.code))


def test_wrong_proof_is_refused_and_counted(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    error = refusal(db, wrong_request())
    assert (error.status, error.error) == (403, "pairing_code_wrong")
    assert error.hint
    assert lock_row(db)[:2] == (1, 0)


def test_wrong_proof_leaves_the_code_usable(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    refusal(db, wrong_request())
    pairing.verify(db, DEVICE_ID, request_for(code.code))


def test_proof_made_for_another_device_is_refused(db: Database, clock: Clock) -> None:
    """A man in the middle shows the app his own certificate; that proof fails on the kit."""
    code = pairing.new_code(db, DEVICE_ID)
    error = refusal(db, request_for(code.code, device_id=OTHER_DEVICE_ID))
    assert (error.status, error.error) == (403, "pairing_code_wrong")
    assert lock_row(db)[0] == 1


def test_five_failures_lock_pairing_even_for_the_right_code(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    backoff = lock_out(db, clock)
    assert backoff == pairing.BASE_LOCKOUT_S
    error = refusal(db, request_for(code.code))
    assert (error.status, error.error) == (429, "pairing_locked")
    retry_after = int(error.headers["Retry-After"])
    assert backoff <= retry_after <= backoff + 1


def test_retry_after_counts_down_while_locked(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock)
    clock.now += 20.0
    retry_after = int(refusal(db, wrong_request()).headers["Retry-After"])
    assert 0 < retry_after <= pairing.BASE_LOCKOUT_S - 20.0 + 1


def test_attempts_while_locked_do_not_extend_the_lock(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID)
    lock_out(db, clock)
    before = lock_row(db)
    for _ in range(pairing.MAX_FAILURES):
        assert refusal(db, wrong_request()).status == 429
    assert lock_row(db) == before


def test_lock_lifts_when_the_back_off_has_passed(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    backoff = lock_out(db, clock)
    clock.now += backoff + 0.001
    pairing.verify(db, DEVICE_ID, request_for(code.code))


def test_back_off_doubles_with_each_lock_out_and_is_capped(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID, ttl_s=1e9)
    backoffs = []
    for _ in range(9):
        backoffs.append(lock_out(db, clock))
        clock.now += backoffs[-1] + 0.001
    assert backoffs[:4] == [30.0, 60.0, 120.0, 240.0]
    assert all(later == min(2 * earlier, pairing.MAX_LOCKOUT_S)
               for earlier, later in itertools.pairwise(backoffs))
    assert backoffs[-2:] == [pairing.MAX_LOCKOUT_S, pairing.MAX_LOCKOUT_S]


def test_success_resets_failures_and_lock_outs(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=1e6)
    clock.now += lock_out(db, clock) + 0.001
    refusal(db, wrong_request())
    assert lock_row(db)[:2] == (1, 1)
    pairing.verify(db, DEVICE_ID, request_for(code.code))
    assert lock_row(db)[:2] == (0, 0)
    pairing.new_code(db, DEVICE_ID)
    assert lock_out(db, clock) == pairing.BASE_LOCKOUT_S


def test_expired_code_is_refused(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 60.0
    error = refusal(db, request_for(code.code))
    assert (error.status, error.error) == (403, "pairing_code_expired")
    assert lock_row(db)[0] == 0


def test_code_still_verifies_just_before_it_expires(db: Database, clock: Clock) -> None:
    code = pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 59.0
    pairing.verify(db, DEVICE_ID, request_for(code.code))


def test_expired_code_is_discarded(db: Database, clock: Clock) -> None:
    pairing.new_code(db, DEVICE_ID, ttl_s=60.0)
    clock.now += 61.0
    refusal(db, wrong_request())
    assert db.query("SELECT COUNT(*) FROM pairing_code")[0][0] == 0


def test_no_code_made_is_refused(db: Database, clock: Clock) -> None:
    error = refusal(db, wrong_request())
    assert (error.status, error.error) == (403, "no_pairing_code")


def test_only_a_derived_key_is_stored(
    db: Database, db_bytes: Callable[[], bytes], clock: Clock
) -> None:
    code = pairing.new_code(db, DEVICE_ID)
    key = db.query("SELECT key FROM pairing_code WHERE id = 1")[0]["key"]
    assert key == pair_key(code.code, DEVICE_ID)
    on_disk = db_bytes()
    assert on_disk
    assert code.code.encode() not in on_disk
    assert code.display.encode() not in on_disk
