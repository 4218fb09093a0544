"""kitfleet: the technician's app (desktop window and CLI)."""

from agent.wire import PACKAGE_VERSION as __version__

__all__ = ["__version__"]
