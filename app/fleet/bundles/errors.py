"""The one error of bundle making, apart so every step of it can raise it."""

from __future__ import annotations

from app.fleet.errors import Error

__all__ = ["BundleError"]


class BundleError(Error):
    """The bundle cannot be made as asked; no file was written."""
