"""Model routes: resumable upload, activation, rollback, deletion and inference.

Each handler's docstring lists its status codes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request

from agent.api.auth import require
from agent.api.bodies import body_of, declared_length
from agent.api.render import npz_response
from agent.api.state import AgentState
from agent.auth.tokens import Caller
from agent.errors import ApiError, NotFound
from agent.metrics.timings import OUTPUT, READ, Stopwatch
from agent.models.service import InferCall
from agent.wire import (
    MAX_INT64,
    NAME_PATTERN,
    VERSION_PATTERN,
    ActivateRequest,
    InferResult,
    ModelInfo,
    UploadRequest,
    UploadStatus,
    error_responses,
)

models_router = APIRouter(tags=["models"])
Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="model name")]
UploadId = Annotated[str, Path(pattern="^[0-9a-f]{24}$")]
_BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "required": True,
}


def _state(request: Request) -> AgentState:
    state = request.app.state.agent
    assert isinstance(state, AgentState)
    return state


@models_router.get("/v1/models", response_model=list[ModelInfo], responses=error_responses(401))
def list_models(request: Request, _: Viewer) -> list[ModelInfo]:
    """Every model on the kit with its versions and the serving one. 200; 401.

    A model whose last version is being deleted meanwhile is left out, not answered as 404."""
    store = _state(request).models
    infos = []
    for name in store.names():
        try:
            infos.append(store.info(name))
        except NotFound:
            continue
    return infos


@models_router.get("/v1/models/{name}", response_model=ModelInfo, responses=error_responses(401, 404, 422))
def get_model(request: Request, name: ModelName, _: Viewer) -> ModelInfo:
    """One model's versions. 200; 401; 404."""
    return _state(request).models.info(name)


@models_router.post(
    "/v1/uploads",
    response_model=UploadStatus,
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 413, 422, 507),
)
def create_upload(request: Request, body: UploadRequest, _: Operator) -> UploadStatus:
    """Start (or resume) an upload of the model the manifest describes. 201; 401; 403; 409; 413; 507.

    409 also when the manifest's `requires` are not met by this kit's facts and `force` is not
    set; a forced upload names what it overrode in `gates_overridden` (and the audit log)."""
    return _state(request).uploads.create(body)


@models_router.get(
    "/v1/uploads/{upload_id}", response_model=UploadStatus, responses=error_responses(401, 403, 404, 422)
)
def get_upload(request: Request, upload_id: UploadId, _: Operator) -> UploadStatus:
    """Where an upload stands: resume from `offset`. 200; 401; 403; 404."""
    return _state(request).uploads.status(upload_id)


@models_router.patch(
    "/v1/uploads/{upload_id}",
    response_model=UploadStatus,
    openapi_extra={"requestBody": _BINARY},
    responses=error_responses(401, 403, 404, 409, 413, 422, 507),
)
async def append_upload(
    request: Request,
    upload_id: UploadId,
    _: Operator,
    upload_offset: Annotated[int, Header(ge=0, le=MAX_INT64)],
) -> UploadStatus:
    """Append bytes at `Upload-Offset`, which must be the current end. 200; 401; 403; 404; 409; 413
    (also from Content-Length alone, before any byte is read); 507; 499 in the log when the link drops."""
    body = body_of(
        request,
        f"model upload {upload_id}",
        "the bytes that arrived are kept: run the same `kitfleet deploy` again to resume",
    )
    return await _state(request).uploads.append(upload_id, upload_offset, body, declared_length(request))


@models_router.post(
    "/v1/uploads/{upload_id}/commit",
    response_model=ModelInfo,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def commit_upload(request: Request, upload_id: UploadId, _: Operator) -> ModelInfo:
    """Verify and install the complete upload (and activate it if asked). 200; 401; 403; 404; 409; 422."""
    return await _state(request).uploads.commit(upload_id)


@models_router.delete(
    "/v1/uploads/{upload_id}", status_code=204, responses=error_responses(401, 403, 404, 422)
)
def abort_upload(request: Request, upload_id: UploadId, _: Operator) -> None:
    """Abandon an upload and free its space. 204; 401; 403; 404."""
    _state(request).uploads.abort(upload_id)


@models_router.post(
    "/v1/models/{name}/activate",
    response_model=ModelInfo,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
def activate(request: Request, name: ModelName, body: ActivateRequest, _: Operator) -> ModelInfo:
    """Serve `version` from now on; the one it replaces stays for rollback. 200; 401; 403; 404; 422."""
    state = _state(request)
    return state.models.activate(name, body.version)


@models_router.post(
    "/v1/models/{name}/rollback", response_model=ModelInfo, responses=error_responses(401, 403, 404, 409, 422)
)
def rollback(request: Request, name: ModelName, _: Operator) -> ModelInfo:
    """Serve the previous version again. 200; 401; 403; 404; 409."""
    return _state(request).models.rollback(name)


@models_router.delete(
    "/v1/models/{name}/versions/{version}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422),
)
def delete_version(
    request: Request,
    name: ModelName,
    version: Annotated[str, Path(pattern=VERSION_PATTERN)],
    _: Operator,
    force: bool = False,
) -> None:
    """Delete a version; the serving one only with force=true. 204; 401; 403; 404; 409; 422."""
    state = _state(request)
    path = state.models.active(name, version)[1]
    state.models.delete(name, version, force)
    state.infer.forget(path)


@models_router.post(
    "/v1/models/{name}/infer",
    response_model=InferResult,
    openapi_extra={"requestBody": _BINARY},
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422),
)
async def infer(
    request: Request,
    name: ModelName,
    _: Operator,
    version: Annotated[str | None, Query(pattern=VERSION_PATTERN)] = None,
    top_k: Annotated[int, Query(ge=1, le=100)] = 5,
) -> Any:
    """Run an image (JPEG, PNG, BMP or WebP) or a tensor (.npy) through the serving model.

    Classification and detection answer JSON naming the version and sha256; a raw
    model answers its outputs as an .npz. 200; 400; 401; 403; 404; 409; 413; 415; 422.
    """
    state = _state(request)
    watch = Stopwatch()  # this path's stages end at the handler: FastAPI encodes and writes after
    with state.infer.coming(name) as ticket:
        payload = await _read_bounded(request, state.settings.max_infer_bytes)
        watch.lap(READ)
        call = InferCall(name, version, payload, request.headers.get("content-type"), top_k, watch)
        manifest, result, tensors = await state.infer.answer(call, request.client, ticket)
    answer = result if tensors is None else npz_response(tensors, manifest.version, manifest.sha256)
    watch.lap(OUTPUT)
    state.infer.times.add(manifest.name, watch)
    return answer


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if not body:
        raise ApiError(
            400,
            "empty_body",
            "send the image or tensor as the request body",
            "e.g. Content-Type: image/jpeg, or application/x-npy for a tensor",
        )
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the input is larger than {limit} bytes",
        "resize the image, or raise max_infer_bytes in agent.json",
    )
