"""kitfleet-agent: the daemon that runs on each kit."""

from __future__ import annotations

from agent.toolkit.version import VERSION as __version__

__all__ = ["__version__"]
