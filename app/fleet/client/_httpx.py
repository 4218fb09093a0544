"""httpx, imported on first use and without its command-line tool.

The plain GETs of `kitfleet kits` and of every fleet poll go by `_gets`, not httpx: importing
httpx (with h11's neighbours urllib.request, http.cookiejar, idna) was ~30 ms of that command's
~0.4 s start (issue 19). So `httpx` here is a stand-in that imports the real module at the
first use of one of its names: an upload, a job submission, a live view.

`import httpx` also imports `httpx._main`, the `httpx` console command, which loads click, rich
and pygments where they are installed: 10-45 ms more for a tool kitfleet never runs. With
`httpx._main` marked missing while httpx imports, httpx defines a stand-in `main` that only
says its extra is not installed, exactly as when click is absent.
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["httpx"]

_CLI = "httpx._main"


@functools.cache
def _imported() -> ModuleType:
    hidden = _CLI not in sys.modules and "httpx" not in sys.modules
    if hidden:
        sys.modules[_CLI] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        return importlib.import_module("httpx")
    finally:
        if hidden:
            del sys.modules[_CLI]


class _OnFirstUse:
    """Stands for the httpx module: the first name asked of it imports httpx."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_imported(), name)


if TYPE_CHECKING:
    import httpx
else:
    httpx = _OnFirstUse()
