"""Who signs a bundle and who is trusted: Ed25519 (the app's signing key) and ECDSA P-256 with
SHA-256 (a kit's TLS identity key, for receipts). `cryptography` is imported inside functions so
nothing on the agent's start path pays for it.

A manifest's `signer` says which key signed it: `{"alg": "ed25519", "key_id", "public_key"}` or
`{"alg": "ecdsa-p256-sha256", "device_id", "certificate"}`. Verifiers never trust what the signer
block claims; they look the key up in what the caller trusts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import Mapping
from typing import Any

from agent.toolkit.bundles import Signer, Verifier
from agent.toolkit.errors import Forbidden
from agent.wire import device_id_from_der

__all__ = [
    "ECDSA_P256",
    "ED25519",
    "certificate_signer",
    "certificate_verifier",
    "ed25519_generate",
    "ed25519_key_id",
    "ed25519_public_key",
    "ed25519_signer",
    "ed25519_signer_info",
    "ed25519_verifier",
    "ed25519_verify",
    "manifest_signer",
]

ED25519, ECDSA_P256 = "ed25519", "ecdsa-p256-sha256"


def ed25519_generate() -> bytes:
    """A new private key, as its 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def ed25519_public_key(private_raw: bytes) -> bytes:
    """The 32 raw bytes of the public key that goes with `private_raw`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(private_raw).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def ed25519_signer_info(public_raw: bytes) -> dict[str, str]:
    """The manifest's `signer` block for an Ed25519 key."""
    return {
        "alg": ED25519,
        "key_id": ed25519_key_id(public_raw),
        "public_key": base64.b64encode(public_raw).decode(),
    }


def ed25519_signer(private_raw: bytes) -> Signer:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(private_raw)
    return key.sign


def ed25519_verify(public_raw: bytes, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def ed25519_verifier(trusted: Mapping[str, bytes]) -> Verifier:
    """Accept manifests signed by one of `trusted` (key id -> raw public key)."""

    def verify(manifest_bytes: bytes, signature: bytes) -> bool:
        signer = manifest_signer(manifest_bytes)
        key_id = str(signer.get("key_id", ""))[:64]
        if signer.get("alg") != ED25519 or key_id not in trusted:
            raise Forbidden(
                "unknown_signer",
                f"The bundle is signed by key '{key_id or '?'}', which this kit does not trust.",
                "Adopt or provision the kit from the laptop that made the bundle, or trust its key "
                "with `kitfleet-agent signers trust FILE`.",
            )
        return ed25519_verify(trusted[key_id], manifest_bytes, signature)

    return verify


def certificate_signer(key_pem: bytes) -> Signer:
    """Sign with a kit's TLS identity key (ECDSA P-256, SHA-256, DER signature)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("the identity key is not an EC key")
    return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


def certificate_verifier(cert_pem: str, expected_device_id: str) -> Verifier:
    """Accept manifests signed by the key in `cert_pem`, whose device ID must be the pinned one."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    if device_id_from_der(der) != expected_device_id:
        raise Forbidden(
            "impostor_kit",
            "The certificate does not belong to the kit this bundle claims to come from.",
            "Do not merge it; check where the file came from.",
        )
    public = x509.load_der_x509_certificate(der).public_key()

    def verify(manifest_bytes: bytes, signature: bytes) -> bool:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return False
        try:
            public.verify(signature, manifest_bytes, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    return verify


def manifest_signer(manifest_bytes: bytes) -> dict[str, Any]:
    """The `signer` block of a not yet verified manifest (only to pick the key to verify with)."""
    try:
        signer = json.loads(manifest_bytes).get("signer")
    except (ValueError, AttributeError):
        signer = None
    return signer if isinstance(signer, dict) else {}
