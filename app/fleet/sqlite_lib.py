"""sqlite-utils, imported without numpy and pandas.

sqlite-utils imports numpy and pandas, where installed, only to map their scalar types to
column types. The app's tables are created with Python types and never see those scalars, and
importing numpy cost every `kitfleet kits` 80-170 ms of its start (issue 19). So they are
hidden while sqlite-utils is imported, unless something already loaded them; this happens once,
when the first store module is imported, before any thread that might import numpy starts.
"""

from __future__ import annotations

import sys

__all__ = ["sqlite_utils"]

_NOT_NEEDED = ("numpy", "pandas")

_hidden = [name for name in _NOT_NEEDED if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]  # an import of it raises ImportError
try:
    import sqlite_utils
finally:
    for _name in _hidden:
        del sys.modules[_name]
