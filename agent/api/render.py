"""Responses that both infer paths (the route and fast_infer.py) send the same way."""

from __future__ import annotations

import io
from typing import Any

from fastapi import Response

__all__ = ["npz_response"]


def npz_response(tensors: dict[str, Any], version: str, sha256: str) -> Response:
    """A raw model's outputs as an .npz, naming the version and file that made them."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **tensors)
    return Response(
        buffer.getvalue(),
        media_type="application/x-npz",
        headers={"X-Model-Version": version, "X-Model-Sha256": sha256},
    )
