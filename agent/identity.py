"""The kit's identity: a TLS key pair and self-signed certificate made at first start.

The device ID is the SHA-256 of the certificate (DER). The app pins it at adoption.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.toolkit.durable import write_atomic
from agent.wire import device_id_from_der, format_device_id

CERT_FILE = "identity.crt"
KEY_FILE = "identity.key"
_VALIDITY = dt.timedelta(days=365 * 30)  # field kits outlive any renewal process


@dataclass(frozen=True)
class Identity:
    cert_path: Path
    key_path: Path
    device_id: str

    @property
    def display_id(self) -> str:
        return format_device_id(self.device_id)


def load_or_create(data_dir: Path) -> Identity:
    """Load the kit's identity, making it on first start."""
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        _generate(cert_path, key_path)
    return Identity(cert_path, key_path, _device_id(cert_path))


def load_or_create_lean(data_dir: Path) -> Identity:
    """Like load_or_create, but a missing identity is made in a child process.

    The daemon then never imports `cryptography` (~11 MB of RSS for the life of
    the process) just to write two files once.
    """
    if not ((data_dir / CERT_FILE).exists() and (data_dir / KEY_FILE).exists()):
        program = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "agent"]
        subprocess.run(
            [*program, "identity", "--data-dir", str(data_dir)], check=True, stdout=subprocess.DEVNULL
        )
    return load_or_create(data_dir)


def regenerate(data_dir: Path) -> Identity:
    """Replace the kit's identity. Every app that adopted it will see 'identity changed'."""
    _generate(data_dir / CERT_FILE, data_dir / KEY_FILE)
    return load_or_create(data_dir)


def _device_id(cert_path: Path) -> str:
    return device_id_from_der(ssl.PEM_cert_to_DER_cert(cert_path.read_text()))


def _generate(cert_path: Path, key_path: Path) -> None:
    # Imported here: `cryptography` costs ~9 MB of RSS and is needed once per kit.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"kitfleet-agent {socket.gethostname()}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kitfleet"),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, key_pem, mode=0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
