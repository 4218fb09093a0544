"""Field dataset calls: label one image into a dataset on the kit, count its classes, and work
through the inputs a model was unsure about (the kit's unsure buffer)."""

from __future__ import annotations

from urllib.parse import quote

from agent.wire.field_datasets import FieldClasses, LabelledImage, UnsureItem
from app.fleet.client._transport import KitConnection

MAX_IMAGE = 16 << 20  # what the kit takes for one labelled image, and serves for a kept one
_TYPES = {"jpg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "webp": "image/webp"}


class FieldCalls(KitConnection):
    """Images labelled in the field, and what a model was unsure about."""

    async def label_image(self, dataset: str, label: str, image: bytes, kind: str = "jpg") -> LabelledImage:
        """Keep `image` in field dataset `dataset` under `label` (the kit checks it is a picture)."""
        return await self._call(
            LabelledImage,
            "POST",
            f"/v1/datasets/{quote(dataset, safe='')}/labelled",
            params={"label": label},
            content=image,
            headers={"Content-Type": _TYPES.get(kind, "application/octet-stream")},
            timeout=self._long(),
        )

    async def dataset_classes(self, dataset: str) -> FieldClasses:
        return await self._get(FieldClasses, f"/v1/datasets/{quote(dataset, safe='')}/classes")

    async def unlabel_image(self, dataset: str, file: str) -> None:
        """Take `<label>/<file>` (as `label_image` answered it) out of the dataset."""
        label, _, name = (quote(part, safe="") for part in file.partition("/"))
        await self._request("DELETE", f"/v1/datasets/{quote(dataset, safe='')}/labelled/{label}/{name}")

    async def unsure(self, model: str | None = None) -> list[UnsureItem]:
        return await self._list(UnsureItem, "/v1/unsure", params={"model": model} if model else {})

    async def unsure_image(self, item_id: str) -> bytes:
        return (await self._request("GET", f"/v1/unsure/{quote(item_id, safe='')}", limit=MAX_IMAGE)).content

    async def label_unsure(self, item_id: str, dataset: str, label: str) -> LabelledImage:
        """Move a kept input into a field dataset under `label`."""
        return await self._call(
            LabelledImage,
            "POST",
            f"/v1/unsure/{quote(item_id, safe='')}/label",
            params={"dataset": dataset, "label": label},
        )

    async def delete_unsure(self, item_id: str) -> None:
        await self._request("DELETE", f"/v1/unsure/{quote(item_id, safe='')}")
