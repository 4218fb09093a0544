"""Adoption: a kit joins the inventory only once it proved who it is, by the pairing code both
sides know, or by serving the certificate it enrolled with over SSH."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import ssl
import time

from pydantic import ValidationError

from agent.wire import (
    FactFamilies,
    PairRequest,
    PairResponse,
    Scope,
    device_id_from_der,
    pair_confirm,
    pair_key,
    pair_proof,
)
from app.fleet.audit import AppAudit
from app.fleet.bundles.ledger import Ledger
from app.fleet.client import Call, KitClient
from app.fleet.discovery import Announcement, async_discover
from app.fleet.errors import AdoptionRefused, BadAnswer, KitNotFound, KitUnreachable
from app.fleet.inventory import Inventory, Kit
from app.fleet.settings import AppSettings
from app.fleet.signing import load_or_create
from app.fleet.tls import async_fetch_certificate


class Adoption:
    """The adopting half of `Fleet` (which provides the settings, inventory and audit log)."""

    settings: AppSettings
    inventory: Inventory
    audit: AppAudit

    async def async_adopt(
        self, ref: str, code: str, scope: Scope = "operator", discover_timeout: float = 3.0
    ) -> Kit:
        """Adopt a kit named by device ID, name or HOST:PORT, proving the pairing code; nothing
        is kept unless the kit proves the code back. `scope`: what the token may do (admin only
        when the technician asks for it)."""
        target = await self._find_target(ref, discover_timeout)
        host, port = target.host, target.port
        try:
            cert_pem, device_id = await async_fetch_certificate(host, port, self.settings.request_timeout_s)
        except OSError as exc:
            raise KitUnreachable(f"cannot reach {host}:{port} to adopt it: {exc}") from exc
        if target.device_id and target.device_id != device_id:
            raise AdoptionRefused(
                f"{target.name} announces device {target.device_id[:16]}… but the server at "
                f"{host}:{port} presents {device_id[:16]}…; refusing to adopt a possible impostor"
            )
        nonce = secrets.token_hex(16)
        app_id = self.inventory.app_id
        key = await asyncio.to_thread(pair_key, code, device_id)
        signer = load_or_create(self.settings.home).current  # the kit learns it as it pairs
        request = PairRequest(
            app_id=app_id,
            app_name="kitfleet",
            nonce=nonce,
            scope=scope,
            proof=pair_proof(key, device_id, app_id, nonce, signer.public_b64),
            signer_public_key=signer.public_b64,
        )
        held: list[Call] = []

        def record(call: Call) -> None:  # a pairing that worked is logged once the kit proved it
            if call.path == "/v1/pair" and call.status == 200:
                held.append(call)
            else:
                self.audit.record_call(call)

        async with KitClient(
            target.name or host,
            host,
            port,
            cert_pem,
            device_id,
            timeout=self.settings.request_timeout_s,
            on_call=record,
        ) as client:
            answer = await self._async_pair(client, request, key, f"{host}:{port}")
            for call in held:
                self.audit.record_call(call)
            health = await client.health()
        kit = Kit(
            device_id=device_id,
            name=answer.name,
            host=host,
            port=port,
            cert_pem=cert_pem,
            token=answer.token,
            token_id=answer.token_id,
            scope=answer.scope,
            kit_model=target.kit_model,
            agent_version=health.version,
            adopted_at=time.time(),
            last_seen_at=time.time(),
        )
        self.inventory.save(kit)
        Ledger(self.inventory).set_trusted_key(device_id, signer.key_id)
        return kit

    async def _async_pair(
        self, client: KitClient, request: PairRequest, key: bytes, address: str
    ) -> PairResponse:
        """The kit's answer to pairing, once it proved it knows the code too (its `confirm`
        over the same key, both nonces and the token); AdoptionRefused otherwise."""
        try:
            answer: PairResponse | None = await client.pair(request)
        except (ValidationError, BadAnswer):
            answer = None  # not a kit's answer at all
        if answer is None or not _proves_code(answer, key, client.device_id, request):
            message = (
                f"the kit at {address} did not prove it knows the pairing code: the code was "
                "typed wrong, or this is not the kit it claims to be (an agent older than this "
                "app cannot prove it either: update it, or adopt with `kitfleet provision`). "
                "Nothing was saved; check the code with `kitfleet-agent pair-code` on the kit "
                "and adopt again"
            )
            self.audit.record(
                "kit.adopt",
                "",
                "refused",
                client.device_id,
                client.name,
                {"scope": request.scope, "message": message[:256]},
            )
            raise AdoptionRefused(message)
        return answer

    async def async_adopt_enrolled(
        self,
        host: str,
        port: int,
        *,
        device_id: str,
        cert_pem: str,
        token: str,
        token_id: str,
        scope: str,
        name: str,
    ) -> Kit:
        """Record a kit enrolled over a trusted channel (SSH), once the agent at host:port
        proves to be that kit: it must serve the very certificate the enrollment returned."""
        enrolled = device_id_from_der(ssl.PEM_cert_to_DER_cert(cert_pem))
        if enrolled != device_id:
            raise AdoptionRefused(
                f"the kit enrolled as {device_id[:16]}… but sent the "
                f"certificate of {enrolled[:16]}…; refusing to adopt it"
            )
        try:
            _, served = await async_fetch_certificate(host, port, self.settings.request_timeout_s)
        except OSError as exc:
            raise KitUnreachable(
                f"cannot reach the agent at {host}:{port} to adopt it: {exc}; "
                "check that its port is open to this laptop"
            ) from exc
        if served != device_id:
            raise AdoptionRefused(
                f"the agent at {host}:{port} serves certificate {served[:16]}… but the kit "
                f"enrolled as {device_id[:16]}… over SSH; another program may hold the port, "
                "or the address leads elsewhere: refusing to adopt"
            )
        async with KitClient(
            name or host,
            host,
            port,
            cert_pem,
            device_id,
            token=token,
            timeout=self.settings.request_timeout_s,
            on_call=self.audit.record_call,
        ) as client:
            health = await client.health()
            facts = await client.facts()  # proves the token works, and fills the inventory
        kit = Kit(
            device_id=device_id,
            name=name or host,
            host=host,
            port=port,
            cert_pem=cert_pem,
            token=token,
            token_id=token_id,
            scope=scope,
            kit_model=_kit_model(facts.families),
            agent_version=health.version,
            adopted_at=time.time(),
            last_seen_at=time.time(),
        )
        self.inventory.save(kit)
        self.inventory.save_facts(device_id, facts.families)
        self.audit.record("kit.adopt", token_id, "ok", device_id, kit.name, {"via": "ssh", "scope": scope})
        return kit

    async def _find_target(self, ref: str, timeout: float) -> Announcement:
        host, sep, port = ref.rpartition(":")
        if sep and port.isdigit():
            return Announcement("", "", host, "", "", "", (host.strip("[]"),), int(port))
        key = ref.replace("-", "").lower()

        def matches(a: Announcement) -> bool:
            return a.name.lower() == ref.lower() or (len(key) >= 4 and a.device_id.startswith(key))

        seen = await async_discover(self.settings.mdns_interfaces, timeout, stop_when=matches)
        hits = [a for a in seen if matches(a)]
        if len({a.device_id for a in hits}) > 1:
            raise KitNotFound(f"{ref!r} matches several announcing kits; use the device ID")
        if not hits:
            names = ", ".join(a.name for a in seen) or "none"
            raise KitNotFound(
                f"no kit called {ref!r} is announcing (seen: {names}); "
                "check it is on this network, or give HOST:PORT"
            )
        return hits[0]


def _proves_code(answer: PairResponse, key: bytes, device_id: str, request: PairRequest) -> bool:
    """The kit's confirmation is the one only the code's key makes, for this very answer."""
    expected = pair_confirm(
        key,
        device_id,
        request.app_id,
        request.nonce,
        answer.kit_nonce,
        answer.token_id,
        answer.scope,
        answer.token,
    )
    # compared as bytes: a rogue's confirm may hold any character
    return answer.device_id == device_id and hmac.compare_digest(expected.encode(), answer.confirm.encode())


def _kit_model(families: FactFamilies) -> str:
    """The kit model its firmware names (DMI or device tree), or empty."""
    identity = families.system.kit if families.system else None
    return (identity.model if identity else None) or ""
