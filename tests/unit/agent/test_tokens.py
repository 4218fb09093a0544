"""Bearer tokens against a real database: only digests stored, scopes ranked, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from agent.auth.tokens import TOKEN_PREFIX, Caller, TokenStore
from agent.db import Database
from agent.wire import Scope


@pytest.fixture
def store(db: Database) -> TokenStore:
    return TokenStore(db)


@pytest.mark.parametrize(
    ("scope", "needed", "allowed"),
    [
        ("viewer", "viewer", True),
        ("viewer", "operator", False),
        ("viewer", "admin", False),
        ("operator", "viewer", True),
        ("operator", "operator", True),
        ("operator", "admin", False),
        ("admin", "viewer", True),
        ("admin", "operator", True),
        ("admin", "admin", True),
    ],
)
def test_caller_allows_its_own_scope_and_those_below(scope: Scope, needed: Scope, allowed: bool) -> None:
    assert Caller("t1", "laptop", scope).allows(needed) is allowed


def test_issued_token_authenticates_as_its_caller(store: TokenStore) -> None:
    token_id, secret = store.issue("laptop", "operator")
    assert secret.startswith(TOKEN_PREFIX)
    assert store.authenticate(secret) == Caller(token_id, "laptop", "operator")


def test_each_token_is_unique(store: TokenStore) -> None:
    first, second = store.issue("a", "admin"), store.issue("b", "admin")
    assert first[0] != second[0]
    assert first[1] != second[1]


@pytest.mark.parametrize("secret", ["", TOKEN_PREFIX, "kft_not-a-token"])
def test_unknown_secret_does_not_authenticate(store: TokenStore, secret: str) -> None:
    store.issue("laptop", "admin")
    assert store.authenticate(secret) is None


def test_only_the_secrets_sha256_is_stored(
    store: TokenStore, db: Database, db_bytes: Callable[[], bytes]
) -> None:
    token_id, secret = store.issue("laptop", "admin")
    row = db.query("SELECT hash FROM tokens WHERE id = ?", (token_id,))[0]
    assert row["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    on_disk = db_bytes()
    assert on_disk
    assert secret.encode() not in on_disk
    assert secret[len(TOKEN_PREFIX) :].encode() not in on_disk


def test_revoked_token_no_longer_authenticates(store: TokenStore) -> None:
    token_id, secret = store.issue("laptop", "admin")
    assert store.revoke(token_id) is True
    assert store.authenticate(secret) is None


def test_a_recently_verified_token_is_forgotten_when_revoked(store: TokenStore) -> None:
    token_id, secret = store.issue("laptop", "admin")
    assert store.recently_verified(secret) is None  # never verified yet: the database decides
    caller = store.authenticate(secret)
    assert store.recently_verified(secret) == caller
    store.revoke(token_id)
    assert store.recently_verified(secret) is None
    assert store.authenticate(secret) is None


def test_revoking_twice_or_an_unknown_token_reports_false(store: TokenStore) -> None:
    token_id, _ = store.issue("laptop", "admin")
    store.revoke(token_id)
    assert store.revoke(token_id) is False
    assert store.revoke("no-such-token") is False


def test_revoking_one_token_leaves_the_others(store: TokenStore) -> None:
    revoked_id, _ = store.issue("old laptop", "admin")
    kept_id, kept = store.issue("new laptop", "viewer")
    store.revoke(revoked_id)
    caller = store.authenticate(kept)
    assert caller is not None
    assert caller.token_id == kept_id


def test_list_shows_every_token_oldest_first(store: TokenStore) -> None:
    first_id, _ = store.issue("first", "viewer")
    second_id, _ = store.issue("second", "admin")
    store.revoke(first_id)
    infos = store.list()
    assert [(i.token_id, i.label, i.scope, i.revoked) for i in infos] == [
        (first_id, "first", "viewer", True),
        (second_id, "second", "admin", False),
    ]
    assert infos[0].created_at <= infos[1].created_at


def test_authenticate_records_last_use(store: TokenStore) -> None:
    _, secret = store.issue("laptop", "admin")
    [before] = store.list()
    assert before.last_used_at is None
    store.authenticate(secret)
    [after] = store.list()
    assert after.last_used_at is not None
    assert after.last_used_at >= after.created_at


def test_failed_authentication_records_no_use(store: TokenStore) -> None:
    store.issue("laptop", "admin")
    store.authenticate("kft_wrong")
    assert store.list()[0].last_used_at is None
