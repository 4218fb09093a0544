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
    """Modules reached only by name: the CLI's command modules, and the whole agent with the
    server parts uvicorn loads by name (`kitfleet demo` runs local agents from the bundle)."""
    import pkgutil

    import agent
    import app.cli

    cli = [f"app.cli.{m.name}" for m in pkgutil.iter_modules(app.cli.__path__)]
    kit = [m.name for m in pkgutil.walk_packages(agent.__path__, "agent.")]
    server = ["uvicorn.loops.auto", "uvicorn.protocols.http.auto", "uvicorn.protocols.http.httptools_impl"]
    server += ["uvicorn.protocols.http.h11_impl", "uvicorn.lifespan.on", "uvicorn.logging"]
    return [*cli, "agent", *kit, *server]


# The xcb platform plugin's libraries that PySide6's wheel does not carry and a laptop may lack
# (without them Qt aborts on a real X display): taken from the build machine, which must have
# them (Debian/Ubuntu: the packages named), and bundled beside the other libraries.
XCB_LIBRARIES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def xcb_libraries() -> list[tuple[str, str]]:
    """(path, ".") per library in XCB_LIBRARIES; SystemExit naming the packages that are missing."""
    import shutil
    import subprocess

    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    known = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in known.splitlines():
        name, _, path = line.strip().partition(" => ")
        soname = name.split(" ")[0]
        if soname in XCB_LIBRARIES and soname not in found:
            found[soname] = path
    missing = [pkg for soname, pkg in XCB_LIBRARIES.items() if soname not in found]
    if missing:
        raise SystemExit(f"the bundle needs these on the build machine: apt install {' '.join(missing)}")
    return [(path, ".") for path in found.values()]


def glibc_floor() -> str:
    """The build machine's glibc: the oldest a bundle built here runs on (its libraries need it)."""
    import os

    return (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0").rpartition(" ")[2]


def icon() -> str:
    return str(ICONS / "kitfleet-256.png")
