"""kitfleet: the technician's app (desktop window and CLI)."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """`__version__`, read on first use (as the agent's): importing the wire contract for it
    would cost every `kitfleet` command pydantic and every model of the contract."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from agent.toolkit.version import package_version

    version = globals()["__version__"] = package_version()
    return version
