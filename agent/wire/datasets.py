"""Resumable dataset uploads: the archive's length first, then bytes from where the kit stands."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from agent.wire.base import WireModel
from agent.wire.common import MAX_INT64

__all__ = ["DatasetUpload", "DatasetUploadRequest"]


class DatasetUploadRequest(WireModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=MAX_INT64, description="the archive's exact length in bytes")


class DatasetUpload(WireModel):
    name: str
    size: int
    offset: int = Field(description="bytes the kit holds: send from here (a dropped link keeps them)")
