"""TLS pinned to a kit's own certificate: no CA, no host names, just the key we adopted."""

from __future__ import annotations

import asyncio
import functools
import ssl

from agent.wire import device_id_from_der


def pinned_context(cert_pem: str) -> ssl.SSLContext:
    """A client context that trusts exactly this one certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # kits move between addresses; the key is the identity
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_verify_locations(cadata=cert_pem)
    return ctx


@functools.cache
def any_certificate_context() -> ssl.SSLContext:
    """A client context for every kit that checks no chain: the caller pins instead, comparing
    the certificate the kit presented with the adopted one before it sends anything.

    TLS's handshake proves the server holds the key of the certificate it presented (its
    signature over the handshake, or its Finished message); this context leaves out only the
    check of who issued it, which a pinned certificate does not need. aiohttp pins the same way
    (`Fingerprint`). One context serves a thousand kits: making one per kit (`pinned_context`)
    costs half a millisecond of CPU each, a share of the window's first poll of a large fleet.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _fetch_sync(host: str, port: int, timeout: float) -> str:
    return ssl.get_server_certificate((host, port), timeout=timeout)


async def async_fetch_certificate(host: str, port: int, timeout: float) -> tuple[str, str]:
    """The certificate a server presents, unverified, and the device ID it implies.

    Used only to learn a kit's certificate before pinning it (pairing proves it
    belongs to the kit) and to tell 'identity changed' from 'unreachable'.
    """
    pem = await asyncio.to_thread(_fetch_sync, host, port, timeout)
    return pem, device_id_from_der(ssl.PEM_cert_to_DER_cert(pem))
