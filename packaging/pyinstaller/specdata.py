"""What the PyInstaller spec bundles, read from the package itself so a release never drifts.

Kept apart from kitfleet.spec so it can be tested without PyInstaller installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ICONS = REPO / "packaging" / "icons"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def version() -> str:
    from app import __version__

    return str(__version__)


def datas() -> list[tuple[str, str]]:
    """(source, folder in the bundle) for every data file the app opens by path at run time."""
    import resources

    root = Path(resources.__file__).resolve().parent
    pairs = [
        (str(path), str(path.parent.relative_to(root.parent)))
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".py"
    ]
    # Copied to kits as a file (app/provision/service.py reads its source), so it must ship as data.
    supervisor = REPO / "app" / "provision" / "supervisor.py"
    pairs.append((str(supervisor), "app/provision"))
    return pairs


def hidden_imports() -> list[str]:
    """Modules reached only by name: the CLI's command modules and the GUI's Qt plugins' helpers."""
    import pkgutil

    import app.cli

    return [f"app.cli.{m.name}" for m in pkgutil.iter_modules(app.cli.__path__)]


def icon() -> str:
    return str(ICONS / "kitfleet-256.png")
