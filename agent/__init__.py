"""kitfleet-agent: the daemon that runs on each kit."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed package on first use: importlib.metadata costs
    ~60 ms to import, which `kitfleet-agent --help` and the kit's other quick commands skip."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("kitfleet")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        version = "0.0.0+source"
    globals()["__version__"] = version
    return version
