"""Field datasets (images labelled on the kit) and the unsure buffer. Each handler's
docstring lists its status codes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse

from agent.api.auth import require
from agent.api.bodies import body_of, declared_length
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.jobs.field_datasets import FieldDatasets
from agent.jobs.unsure import UnsureBuffer
from agent.wire import NAME_PATTERN, error_responses
from agent.wire.field_datasets import (
    LABEL_PATTERN,
    UNSURE_ID_PATTERN,
    FieldClasses,
    LabelledImage,
    UnsureItem,
)

field_router = APIRouter(tags=["field datasets"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
DatasetName = Annotated[str, Path(pattern=NAME_PATTERN, description="dataset name")]
DatasetQuery = Annotated[str, Query(pattern=NAME_PATTERN, description="dataset name")]
Label = Annotated[str, Query(pattern=LABEL_PATTERN, description="the class the image shows")]
ItemId = Annotated[str, Path(pattern=UNSURE_ID_PATTERN, description="a kept input's id")]
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/bmp", "image/webp")
_IMAGE = {
    "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in _IMAGE_TYPES},
    "required": True,
}
_MEDIA = {".jpg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp", ".webp": "image/webp"}


def _state(request: Request) -> AgentState:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return state


def _field(request: Request) -> FieldDatasets:
    return _state(request).jobs.field


def _unsure(request: Request) -> UnsureBuffer:
    return _state(request).jobs.unsure


@field_router.post(
    "/v1/datasets/{name}/labelled",
    response_model=LabelledImage,
    status_code=201,
    openapi_extra={"requestBody": _IMAGE},
    responses=error_responses(401, 403, 409, 413, 422, 507),
)
async def add_labelled(request: Request, name: DatasetName, label: Label, _: Operator) -> LabelledImage:
    """Keep one image (the body) in field dataset `name` under `label`, making either as needed.
    201 (`added` false: the same image already had the label); 401; 403; 409 too many classes or
    images; 413 the body is larger than an image may be; 422 bad name or label, or not an image
    of sane size; 507 no room; 499 in the audit log when the link drops."""
    field = _field(request)
    declared = declared_length(request)
    if declared is not None:
        field.admit(declared)
    data = bytearray()
    async for chunk in body_of(request, f"image for dataset {name}", "nothing of it is kept: send it again"):
        data.extend(chunk)
        field.admit(len(data))
    return await asyncio.to_thread(field.add, name, label, bytes(data))


@field_router.get(
    "/v1/datasets/{name}/classes", response_model=FieldClasses, responses=error_responses(401, 404, 422)
)
def dataset_classes(request: Request, name: DatasetName, _: Viewer) -> FieldClasses:
    """Images per class (a sub-folder per label) of a dataset. 200; 401; 404; 422."""
    return _field(request).classes(name)


@field_router.delete(
    "/v1/datasets/{name}/labelled/{label}/{file}",
    status_code=204,
    responses=error_responses(401, 403, 404, 422),
)
def remove_labelled(
    request: Request,
    name: DatasetName,
    label: Annotated[str, Path(pattern=LABEL_PATTERN)],
    file: Annotated[str, Path(pattern=r"^[0-9a-f]{16}\.(jpg|png|bmp|webp)$")],
    _: Operator,
) -> None:
    """Take one labelled image out of a dataset. 204; 401; 403; 404; 422."""
    _field(request).remove(name, label, file)


@field_router.get("/v1/unsure", response_model=list[UnsureItem], responses=error_responses(401, 422))
def list_unsure(
    request: Request,
    _: Viewer,
    model: Annotated[str | None, Query(pattern=NAME_PATTERN, description="one model's items")] = None,
) -> list[UnsureItem]:
    """Inputs jobs kept because the model was unsure, newest first. 200; 401; 422."""
    return _unsure(request).list(model)


@field_router.get(
    "/v1/unsure/{item_id}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in _IMAGE_TYPES}}, **error_responses(401, 404, 422)},
)
def unsure_image(request: Request, item_id: ItemId, _: Viewer) -> FileResponse:
    """A kept input's image. 200; 401; 404; 422."""
    path = _unsure(request).image(item_id)
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))


@field_router.post(
    "/v1/unsure/{item_id}/label",
    response_model=LabelledImage,
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 422, 507),
)
def label_unsure(
    request: Request, item_id: ItemId, dataset: DatasetQuery, label: Label, _: Operator
) -> LabelledImage:
    """Move a kept input into field dataset `dataset` under `label`. 201; 401; 403; 404; 409 too
    many classes or images; 422 bad name or label; 507 no room."""
    field = _field(request)
    return _unsure(request).take(item_id, lambda data: field.add(dataset, label, data))


@field_router.delete("/v1/unsure/{item_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
def delete_unsure(request: Request, item_id: ItemId, _: Operator) -> None:
    """Forget a kept input. 204; 401; 403; 404; 422."""
    _unsure(request).delete(item_id)
