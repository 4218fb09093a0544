"""Network stream sources: masked for people, confined to cameras, pinned against rebinding.

An operator may point a stream job at any rtsp(s)/http(s) URL, and FFmpeg connects from the
kit. So, unless an admin names the host in `allowed_stream_hosts`, the host is resolved and
every address it resolves to must be somewhere a camera could be: not loopback, link-local
(cloud metadata lives there), unspecified, multicast, reserved, or one of the kit's own
addresses. LAN cameras in private ranges stay allowed. FFmpeg is then given the address that
was checked (the name kept in the Host header), so a second lookup cannot land elsewhere.

Credentials in a URL (`rtsp://user:pass@…`, `?password=…`) are shown as `***` everywhere;
the real URL is kept in the secrets store (`credentials.py`) and joined back in the worker.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from agent.errors import Invalid

__all__ = ["MASK", "Target", "check_url", "ffmpeg_options", "mask", "needs_secret", "scrub"]

MASK = "***"
SCHEMES = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
RESOLVE_TIMEOUT_S = 5.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# query parameters cameras take credentials in (…?user=admin&password=…)
_SECRET_QUERY = re.compile(r"(?i)(^|[&;])([a-z_]*(?:pass|pwd|secret|token|auth|key|sig)[a-z_]*)=([^&;#]*)")
# where cloud providers answer with instance credentials, beyond the link-local range
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
# Containers FFmpeg may read from an HTTP source: not HLS or DASH, whose playlists name
# further URLs on any host (the checks here would cover only the first).
NETWORK_FORMATS = (
    "mpjpeg",
    "mjpeg",
    "mpegts",
    "flv",
    "live_flv",
    "mov",
    "matroska",
    "avi",
    "asf",
    "ogg",
    "h264",
    "hevc",
    "ivf",
    "obu",
    "nut",
    "m4v",
    "mpeg",
)


@dataclass(frozen=True)
class Target:
    """A checked URL: where FFmpeg connects (an address, not a name) and the name it asked for."""

    url: str  # with the checked address in place of the host name
    host: str  # as written, for the Host header and messages
    port: int


def mask(url: str) -> str:
    """`url` with any password (userinfo or query parameter) shown as ***; the user name stays."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(?<=://)[^/@\s]*@", f"{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = f"{userinfo.split(':', 1)[0]}:{MASK}"
        netloc = f"{userinfo}@{hostport}"
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, url: str) -> str:
    """`text` with every password in `url` (userinfo or query) replaced by ***."""
    secrets = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, mask(url))
    if parts.password:
        secrets.append(parts.netloc.rsplit("@", 1)[0].split(":", 1)[1])
    secrets += [m.group(3) for m in _SECRET_QUERY.finditer(parts.query) if m.group(3)]
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def needs_secret(url: str) -> bool:
    """True for a masked URL (*** where mask() puts it): the real one is in the secrets store."""
    return MASK in url and mask(url.replace(MASK, "x")) == url


def check_url(url: str, allowed: list[str], resolve: bool = True) -> Target:
    """The checked target for a stream URL, or a 422 saying why the kit will not connect there.
    Without `resolve` only the URL's shape is checked (the worker resolves when it starts)."""
    parts = _parts(url)
    host, port = parts.hostname or "", _port(parts)
    if not resolve:
        return Target(url, host, port)
    if host in _names(allowed):
        address = _addresses(host, port)[0]
    else:
        addresses = _addresses(host, port)
        for address in addresses:
            if _forbidden(address) and not _listed(address, allowed):
                raise _not_allowed(host)
        address = addresses[0]
    return Target(_pinned(parts, address), host, port)


def ffmpeg_options(target: Target) -> dict[str, str]:
    """FFmpeg options for a checked network source: only the protocols its scheme needs, no
    redirects (a camera could send FFmpeg back to the kit's loopback), no playlists."""
    scheme = urlsplit(target.url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        protocols = "rtsp,rtp,udp,tcp" + (",tls,srtp" if scheme == "rtsps" else "")
        return {"rtsp_transport": "tcp", "protocol_whitelist": protocols}
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = SCHEMES[scheme]
    return {
        "protocol_whitelist": "http,https,tcp,tls",
        "max_redirects": "0",
        "format_whitelist": ",".join(NETWORK_FORMATS),
        "headers": f"Host: {host}{'' if target.port == default else f':{target.port}'}\r\n",
    }


# --- checks --------------------------------------------------------------------------------


def _parts(url: str) -> SplitResult:
    shown = mask(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _bad(shown, "it is not a well-formed URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise _bad(shown, "only rtsp, rtsps, http and https URLs are read")
    if not parts.hostname:
        raise _bad(shown, "it names no host")
    return parts


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:
        raise _bad(mask(parts.geturl()), "its port is not a number from 1 to 65535") from None
    return port or SCHEMES[parts.scheme.lower()]


def _names(allowed: list[str]) -> set[str]:
    return {entry.strip().lower().strip("[]") for entry in allowed}


def _listed(address: IPAddress, allowed: list[str]) -> bool:
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry.strip().strip("[]"), strict=False):
                return True
        except ValueError:  # a host name: matched by name
            continue
    return False


def _addresses(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, within RESOLVE_TIMEOUT_S."""
    found: list[Any] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=lookup, name="resolve", daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT_S)
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found))
    if not addresses:
        raise Invalid(
            "source_unresolved",
            f"{host} does not resolve to an address on this kit",
            "check the camera's name, or give its IP address",
        )
    return addresses


def _forbidden(address: IPAddress) -> bool:
    """Loopback, link-local, unspecified, multicast, reserved, metadata or the kit's own."""
    embedded = _embedded_ipv4(address)
    if embedded is not None and _forbidden(embedded):
        return True
    if isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK:
        return True
    if embedded is None and (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    ):
        return True
    return address in _METADATA or address in _own_addresses()


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _own_addresses() -> set[IPAddress]:
    """Every address on the kit's interfaces: a source there reaches the kit's own services."""
    import psutil

    own: set[IPAddress] = set()
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    own.add(ipaddress.ip_address(entry.address.split("%")[0]))
                except ValueError:
                    continue
    return own


def _pinned(parts: SplitResult, address: IPAddress) -> str:
    """The URL with `address` in place of the host name, userinfo and port kept."""
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{host}{port}"))


def _bad(shown: str, why: str) -> Invalid:
    return Invalid(
        "bad_source",
        f"{shown} cannot be a stream source: {why}",
        "give an rtsp:// or http(s):// URL of a camera, e.g. rtsp://192.168.1.20/stream1",
    )


def _not_allowed(host: str) -> Invalid:
    return Invalid(
        "source_not_allowed",
        f"stream sources may not point at this kit itself or at loopback, link-local, "
        f"multicast or unspecified addresses, and {host} is (or resolves to) one",
        "give the camera's address on the network; an admin can allow a host by "
        "listing it in allowed_stream_hosts in the kit's agent.json",
    )
