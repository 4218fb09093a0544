"""The kitfleet version: this literal is the one source (pyproject.toml reads it, statically,
for the distribution's metadata). Reading it back through importlib.metadata instead cost every
command ~10-60 ms of imports (issue 19)."""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
