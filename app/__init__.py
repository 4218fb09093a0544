"""kitfleet: the technician's app (desktop window and CLI)."""

from __future__ import annotations

from agent.toolkit.version import VERSION as __version__

__all__ = ["__version__"]
