"""`kitfleet-agent --help` and `--version` start without the libraries only commands need."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from agent import __version__

HEAVY = ("importlib.metadata", "sqlite3", "json", "logging", "fastapi", "uvicorn", "numpy", "onnxruntime")


def _loaded_after(*argv: str) -> tuple[list[str], str]:
    """(the heavy modules loaded, stdout) after the real CLI ran with `argv` in a fresh Python."""
    code = (
        "import sys\nfrom agent.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True, timeout=60
    )
    *shown, loaded = done.stdout.strip().splitlines()
    return ast.literal_eval(loaded), "\n".join(shown)


def test_help_loads_none_of_the_commands_libraries() -> None:
    loaded, shown = _loaded_after("--help")
    assert "pair-code" in shown
    assert loaded == []


@pytest.mark.parametrize("command", ["run", "facts"])
def test_a_commands_help_loads_none_either(command: str) -> None:
    loaded, shown = _loaded_after(command, "--help")
    assert "--data-dir" in shown
    assert loaded == []


def test_version_loads_none_of_them_and_is_the_installed_one() -> None:
    """The version is a literal in agent/toolkit/version.py, which pyproject.toml reads for the
    distribution's metadata: both must say the same, and --version needs no importlib.metadata."""
    from importlib import metadata

    loaded, shown = _loaded_after("--version")
    assert shown == f"kitfleet-agent {__version__}"
    assert __version__ == metadata.version("kitfleet")
    assert loaded == []
