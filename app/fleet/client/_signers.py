"""Signer calls: the app keys a kit trusts to sign bundles (issue 22)."""

from __future__ import annotations

from agent.wire.signers import SignerInfo, SignerTrust
from app.fleet.client._answers import list_adapter
from app.fleet.client._transport import KitConnection


class SignerCalls(KitConnection):
    async def signers(self) -> list[SignerInfo]:
        return await self._list(SignerInfo, "/v1/signers")

    async def trust_signer(self, trust: SignerTrust) -> list[SignerInfo]:
        """Trust a new app key and revoke old ones in one call (a rotation)."""
        response = await self._request("POST", "/v1/signers", json=trust.model_dump())
        return list(list_adapter(SignerInfo).validate_json(response.content))
