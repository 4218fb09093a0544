"""httpx, imported without its command-line tool.

`import httpx` also imports `httpx._main`, the `httpx` console command, which loads click, rich
and pygments where they are installed: 10-45 ms of every `kitfleet` command's start (issue 19)
for a tool kitfleet never runs. With `httpx._main` marked missing, httpx defines a stand-in
`main` that only says its extra is not installed, exactly as when click is absent.
"""

from __future__ import annotations

import sys

__all__ = ["httpx"]

_CLI = "httpx._main"

_hidden = _CLI not in sys.modules and "httpx" not in sys.modules
if _hidden:
    sys.modules[_CLI] = None  # type: ignore[assignment]  # an import of it raises ImportError
try:
    import httpx
finally:
    if _hidden:
        del sys.modules[_CLI]
