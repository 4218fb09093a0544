"""The installed kitfleet version, read when asked for (importlib.metadata costs ~60 ms)."""

from __future__ import annotations

__all__ = ["package_version"]


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kitfleet")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"
