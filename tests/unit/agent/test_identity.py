"""The kit's identity: real key pair and certificate in a temporary data dir."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent import identity
from agent.identity import Identity, load_or_create, regenerate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def der_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_der(ident: Identity) -> tuple[bytes, bytes]:
    """(public key from the private key file, public key in the certificate)."""
    key = serialization.load_pem_private_key(ident.key_path.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(ident.cert_path.read_bytes())
    encode = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*encode), cert.public_key().public_bytes(*encode)


def test_first_call_creates_a_private_key_and_certificate(tmp_path: Path) -> None:
    ident = load_or_create(tmp_path)
    assert ident.key_path == tmp_path / identity.KEY_FILE
    assert ident.cert_path == tmp_path / identity.CERT_FILE
    assert mode(ident.key_path) == 0o600
    assert b"PRIVATE KEY" not in ident.cert_path.read_bytes()


def test_certificate_holds_the_keys_public_half(tmp_path: Path) -> None:
    from_key, from_cert = public_der(load_or_create(tmp_path))
    assert from_key == from_cert


def test_device_id_is_the_sha256_of_the_der_certificate(tmp_path: Path) -> None:
    ident = load_or_create(tmp_path)
    assert re.fullmatch("[0-9a-f]{64}", ident.device_id)
    assert ident.device_id == der_sha256(ident.cert_path)


def test_device_id_is_stable_across_calls(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    key_pem = first.key_path.read_bytes()
    second = load_or_create(tmp_path)
    assert second == first
    assert second.key_path.read_bytes() == key_pem


def test_display_id_shows_the_start_of_the_device_id(tmp_path: Path) -> None:
    ident = load_or_create(tmp_path)
    assert ident.display_id.replace("-", "").lower() == ident.device_id[:16]


def test_regenerate_gives_a_new_identity(tmp_path: Path) -> None:
    old = load_or_create(tmp_path)
    new = regenerate(tmp_path)
    assert new.device_id != old.device_id
    assert new.device_id == der_sha256(new.cert_path)
    assert load_or_create(tmp_path) == new
    assert mode(new.key_path) == 0o600
    from_key, from_cert = public_der(new)
    assert from_key == from_cert


def test_a_missing_half_is_made_again(tmp_path: Path) -> None:
    old = load_or_create(tmp_path)
    old.key_path.unlink()
    new = load_or_create(tmp_path)
    assert new.device_id != old.device_id
    assert new.key_path.exists()
