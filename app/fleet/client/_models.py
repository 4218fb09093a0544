"""Model calls: list, upload (resumable), activate, roll back, delete, and infer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agent.wire import InferResult, Manifest, ModelInfo, UploadRequest, UploadStatus
from app.fleet.client._answers import MAX_RAW_OUTPUTS
from app.fleet.client._transport import KitConnection


@dataclass(frozen=True)
class RawOutputs:
    """A raw model's answer: its output tensors as .npz bytes, and the model that made them."""

    npz: bytes
    version: str
    sha256: str


class ModelCalls(KitConnection):
    """The models a kit stores and serves."""

    async def models(self) -> list[ModelInfo]:
        return await self._list(ModelInfo, "/v1/models")

    async def start_upload(self, manifest: Manifest, activate: bool, force: bool = False) -> UploadStatus:
        body = UploadRequest(manifest=manifest, activate=activate, force=force).model_dump(mode="json")
        return await self._call(UploadStatus, "POST", "/v1/uploads", json=body)

    async def abort_upload(self, upload_id: str) -> None:
        """Abandon an upload: the kit frees its bytes."""
        await self._request("DELETE", f"/v1/uploads/{upload_id}")

    async def upload_status(self, upload_id: str) -> UploadStatus:
        return await self._get(UploadStatus, f"/v1/uploads/{upload_id}")

    async def send_upload(self, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> UploadStatus:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        return await self._call(
            UploadStatus,
            "PATCH",
            f"/v1/uploads/{upload_id}",
            content=chunks,
            headers=headers,
            timeout=self._long(),
        )

    async def commit_upload(self, upload_id: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/uploads/{upload_id}/commit", timeout=self._long())

    async def activate(self, name: str, version: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/models/{name}/activate", json={"version": version})

    async def rollback(self, name: str) -> ModelInfo:
        return await self._call(ModelInfo, "POST", f"/v1/models/{name}/rollback")

    async def delete_version(self, name: str, version: str, force: bool = False) -> None:
        await self._request(
            "DELETE", f"/v1/models/{name}/versions/{version}", params={"force": str(force).lower()}
        )

    async def infer(
        self, name: str, payload: bytes, content_type: str, version: str | None = None, top_k: int = 5
    ) -> InferResult | RawOutputs:
        """JSON result for classification/detection; the .npz outputs for a raw model."""
        params: dict[str, Any] = {"top_k": top_k} | ({"version": version} if version else {})
        response = await self._request(
            "POST",
            f"/v1/models/{name}/infer",
            content=payload,
            params=params,
            headers={"Content-Type": content_type},
            limit=MAX_RAW_OUTPUTS,
        )
        if response.headers.get("content-type", "").startswith("application/x-npz"):
            return RawOutputs(
                response.content,
                response.headers.get("x-model-version", ""),
                response.headers.get("x-model-sha256", ""),
            )
        return self._parsed(InferResult, response)
