"""The layering rule: the agent never needs the app or Qt; the app needs only the wire contract and the
shared toolkit, and the toolkit needs nothing of the agent but the wire contract.

Static checks parse every source file with `ast` (imports inside functions and
TYPE_CHECKING blocks count too); the subprocess checks catch what the static
ones cannot, such as a dependency pulling Qt in behind our back.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WIRE_CONTRACT = "agent.wire"
TOOLKIT = "agent.toolkit"
SHARED = (WIRE_CONTRACT, TOOLKIT)  # what the app may import from the agent


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    """`app/fleet/client/_jobs.py` → `app.fleet.client._jobs`; a package is its folder's name."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> list[str]:
    """The dotted package a relative import in `path` starts from."""
    return list(path.relative_to(REPO).parent.parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything the file imports, relative imports made absolute.

    `from a.b import c` yields `a.b.c`, so a name imported from a module and a
    submodule imported from a package are judged alike.
    """
    package = _package_of(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ast.unparse(node.func) in {"importlib.import_module", "import_module", "__import__"}
        ):
            yield node.lineno, node.args[0].value


def within(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def offences(package: str, banned: str) -> list[str]:
    found = []
    for path in sources(package):
        for line, name in imports(path):
            if _is_banned(name, banned):
                found.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return found


def _is_banned(name: str, banned: str) -> bool:
    if banned == "qt":
        return within(name, "PySide6") or name.split(".")[0].startswith("PyQt")
    if banned == "app":
        return within(name, "app")
    assert banned == "agent"
    return within(name, "agent") and not any(within(name, shared) for shared in SHARED)


# --- the checker itself -------------------------------------------------------


def test_the_checker_sees_absolute_and_relative_imports() -> None:
    adoption = set(name for _, name in imports(REPO / "app/fleet/adoption.py"))
    assert "agent.wire.PairRequest" in adoption
    assert "app.fleet.inventory.Inventory" in adoption
    thermal = set(name for _, name in imports(REPO / "agent/facts/thermal.py"))
    assert "agent.facts._common.unavailable" in thermal


def test_the_checker_judges_names_as_the_rule_means() -> None:
    assert _is_banned("agent.server", "agent")
    assert _is_banned("agent.api.app", "agent")
    assert _is_banned("agent.wire_extra", "agent")
    assert not _is_banned("agent.wire.Manifest", "agent")
    assert not _is_banned("agent.toolkit.images.decode_image", "agent")
    assert _is_banned("agent.toolkits", "agent")
    assert _is_banned("app", "app")
    assert not _is_banned("appdirs", "app")
    assert _is_banned("PyQt5.QtCore", "qt")
    assert _is_banned("PySide6.QtWidgets.QWidget", "qt")


@pytest.mark.parametrize("package", ["agent", "app", "app/fleet"])
def test_every_package_has_sources(package: str) -> None:
    assert len(sources(package)) >= 5


# --- static rules -------------------------------------------------------------


@pytest.mark.parametrize("banned", ["qt", "app"])
def test_agent_imports_neither_qt_nor_the_app(banned: str) -> None:
    assert offences("agent", banned) == []


def test_app_imports_only_the_wire_contract_and_the_toolkit_from_the_agent() -> None:
    assert offences("app", "agent") == []


@pytest.mark.parametrize("banned", ["qt", "app", "agent"])
def test_the_toolkit_needs_only_the_wire_contract(banned: str) -> None:
    """Both programs import the toolkit, so it must not pull the agent's domain or HTTP layer in."""
    assert offences("agent/toolkit", banned) == []


def test_app_fleet_never_imports_qt() -> None:
    assert offences("app/fleet", "qt") == []


# --- what a real interpreter loads --------------------------------------------


def loaded_modules(*modules: str) -> set[str]:
    """sys.modules of a fresh interpreter after importing `modules`."""
    code = f"import json, sys\nimport {', '.join(modules)}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def roots(modules: set[str], *names: str) -> list[str]:
    return sorted(m for m in modules if any(within(m, name) for name in names))


def test_agent_entry_points_load_neither_qt_nor_the_app() -> None:
    loaded = loaded_modules("agent.server", "agent.cli", "agent.api.routes")
    assert "agent.api.routes" in loaded
    assert roots(loaded, "PySide6", "app") == []


def test_agent_server_stays_lean_at_import() -> None:
    """Idle RSS goal: the model runtime and the crypto library load only when needed."""
    loaded = loaded_modules("agent.server")
    assert roots(loaded, "onnxruntime", "cryptography") == []


def test_the_window_loads_the_quantizer_only_when_it_quantizes() -> None:
    """onnx with ml_dtypes took 0.8 s of the window's 1.7 s import."""
    loaded = loaded_modules("app.gui.main_window")
    assert "app.gui.main_window" in loaded
    assert roots(loaded, "onnx", "ml_dtypes", "app.fleet.quantize") == []


def test_app_core_loads_no_qt() -> None:
    fleet = [module_name(p) for p in sources("app/fleet")]
    loaded = loaded_modules(*fleet, "app.cli")
    assert set(fleet) <= loaded
    assert roots(loaded, "PySide6", "shiboken6") == []
