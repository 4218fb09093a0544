"""`kitfleet signer rotate`: a new signing key, given to every kit the laptop can reach now.

Each reached kit trusts the new key and revokes the key it trusted before, in one call (audited on
the kit). A kit not reached keeps trusting its old key, and the laptop keeps that key's private half
so bundles for it still verify; once no kit trusts a retired key any more, it is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.wire.signers import SignerTrust
from app.fleet.bundles.ledger import Ledger
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.service import Fleet
from app.fleet.signing import SigningKey, forget_retired, rotate

__all__ = ["Rotation", "async_push_key", "async_rotate"]


@dataclass
class Rotation:
    new: SigningKey
    reached: list[str] = field(default_factory=list)  # kit names now trusting the new key
    missed: dict[str, str] = field(default_factory=dict)  # kit name -> why not (they keep the old key)


async def async_rotate(fleet: Fleet, kits: list[Kit] | None = None) -> Rotation:
    keys, old = rotate(fleet.settings.home)
    fleet.audit.record("signer.rotate", keys.current.key_id, "ok", detail={"retired": old.key_id})
    rotation = Rotation(keys.current)
    await async_push_key(fleet, keys.current, kits or fleet.inventory.kits(), rotation)
    ledger = Ledger(fleet.inventory)
    forget_retired(fleet.settings.home, ledger.keys_in_use())
    return rotation


async def async_push_key(fleet: Fleet, key: SigningKey, kits: list[Kit], rotation: Rotation) -> None:
    """Give `key` to each kit (revoking the key it trusted before); record who has it."""
    ledger = Ledger(fleet.inventory)
    for kit in kits:
        before = ledger.trusted_key(kit.device_id)
        trust = SignerTrust(
            public_key=key.public_b64,
            label=f"kitfleet ({fleet.inventory.app_id})",
            revoke=[before] if before and before != key.key_id else [],
        )
        try:
            await fleet.async_call(kit, lambda client, t=trust: client.trust_signer(t))  # type: ignore[misc]
        except Error as exc:
            rotation.missed[kit.name] = str(exc)
            fleet.audit.record(
                "signer.push", key.key_id, "failed", kit.device_id, kit.name, {"error": str(exc)[:200]}
            )
            continue
        ledger.set_trusted_key(kit.device_id, key.key_id)
        rotation.reached.append(kit.name)
        detail = {"revoked": trust.revoke}
        fleet.audit.record("signer.push", key.key_id, "ok", kit.device_id, kit.name, detail)
