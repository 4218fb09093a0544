"""Checks on what a bundle says about itself: member names (before any is allowed near a path), the
manifest's shape, and the policy helpers a receiver applies (targets, expiry)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agent.toolkit.errors import Forbidden, Invalid

__all__ = [
    "FORMAT",
    "KINDS",
    "MAX_NAME",
    "PAYLOAD_PREFIX",
    "check_expiry",
    "check_manifest",
    "check_member_path",
    "check_target",
]

FORMAT = "kitfleet-bundle/1"
KINDS = ("in", "receipt")
PAYLOAD_PREFIX = "files/"
MAX_NAME = 255
_MAX_PART = 128
_FORBIDDEN = set('\\:*?"<>|\0')
_HEX = set("0123456789abcdef")


def check_member_path(name: str) -> str:
    """Accept `files/a/b.ext`: relative, under `files/`, no `..`/`.`/empty parts, printable, bounded."""
    problem = _problem(name)
    if problem:
        shown = name[:120].encode("unicode_escape").decode()
        raise Invalid(
            "bad_member_name",
            f"Bundle member name '{shown}' is refused: {problem}.",
            "Bundles made by `kitfleet bundle create` never hold such names; do not import this file.",
        )
    return name


def _problem(name: str) -> str | None:
    if not name.startswith(PAYLOAD_PREFIX):
        return f"payload members must live under '{PAYLOAD_PREFIX}'"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if not name.isprintable() or not _FORBIDDEN.isdisjoint(name):
        return "it holds a control or reserved character"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "it has an empty, '.' or '..' part"
    if any(len(part) > _MAX_PART for part in parts):
        return f"a part is longer than {_MAX_PART} characters"
    return None


def check_manifest(body: Any, max_members: int, max_member_bytes: int) -> None:
    """Refuse a manifest that is not a kitfleet bundle manifest of a known shape."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Invalid("bad_manifest", f"The bundle's manifest has {what}.", "Create the bundle again.")

    need(isinstance(body, dict), "no object at its top")
    need(body.get("format") == FORMAT, f"format {str(body.get('format'))[:40]!r}, not {FORMAT!r}")
    need(body.get("kind") in KINDS, "an unknown kind")
    need(isinstance(body.get("signer"), dict), "no signer")
    targets = body.get("targets")
    need(isinstance(targets, list) and all(isinstance(t, str) for t in targets), "a bad target list")
    sequence = body.get("sequence")
    need(isinstance(sequence, int) and not isinstance(sequence, bool) and sequence >= 0, "a bad sequence")
    expires = body.get("expires_at")
    need(expires is None or isinstance(expires, (int, float)), "a bad expiry")
    members = body.get("members")
    need(isinstance(members, list) and len(members) <= max_members, "a bad or too long member list")
    seen: set[str] = set()
    for m in members:
        need(isinstance(m, dict) and isinstance(m.get("path"), str), "a member without a path")
        check_member_path(m["path"])
        need(m["path"] not in seen, f"'{m['path']}' listed twice")
        seen.add(m["path"])
        size = m.get("size")
        need(isinstance(size, int) and 0 <= size <= max_member_bytes, "a bad member size")
        sha = m.get("sha256")
        need(isinstance(sha, str) and len(sha) == 64 and set(sha) <= _HEX, "a bad member hash")


def check_target(manifest: Mapping[str, Any], device_id: str) -> None:
    """Refuse a bundle not addressed to `device_id`."""
    targets = manifest.get("targets", [])
    if device_id not in targets:
        raise Forbidden(
            "bundle_not_for_this_kit",
            f"This bundle is addressed to {len(targets)} other device(s), not to this kit.",
            "Create a bundle for this kit (kitfleet bundle create --kit ...).",
        )


def check_expiry(manifest: Mapping[str, Any], now: float | None = None) -> None:
    """Refuse a bundle past its `expires_at`."""
    expires = manifest.get("expires_at")
    if expires is not None and (now if now is not None else time.time()) > float(expires):
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(expires)))
        raise Forbidden(
            "bundle_expired", f"This bundle expired at {when}.", "Create a fresh bundle on the laptop."
        )
