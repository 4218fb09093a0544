"""`kitfleet` builds its parser without the libraries only some commands need, so every
command (and `--help`) starts in a fraction of a second instead of seconds (issue 19)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from app.cli import choices

# Never for the parser: each costs from 0.1 s (paramiko) to seconds (onnx and its ml_dtypes).
HEAVY = (
    "onnx",
    "onnxruntime",
    "numpy",
    "PIL",
    "paramiko",
    "cryptography",
    "PySide6",
    "zeroconf",
    "httpx",
    "sqlite_utils",
    "pydantic",
    "agent.wire",
    "app.fleet.service",
)


def _loaded_after(*argv: str) -> tuple[list[str], str]:
    """(the heavy modules loaded, stdout) after `import app.cli`, building its parser and
    parsing `argv` (which ends in --help or --version) in a fresh Python."""
    code = (
        "import sys\nimport app.cli\ntry:\n    app.cli._parser().parse_args(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True, timeout=120
    )
    *shown, loaded = done.stdout.strip().splitlines()
    return ast.literal_eval(loaded), "\n".join(shown)


def test_help_imports_none_of_the_commands_libraries() -> None:
    loaded, shown = _loaded_after("--help")
    assert "quantize" in shown
    assert "provision" in shown
    assert loaded == []


@pytest.mark.parametrize(
    "command", [["kits"], ["quantize"], ["deploy"], ["jobs", "submit"], ["provision"], ["stream", "start"]]
)
def test_a_commands_help_imports_none_either(command: list[str]) -> None:
    loaded, shown = _loaded_after(*command, "--help")
    assert "--json" in shown or "--home" not in shown  # the command's own help was printed
    assert loaded == []


def test_version_is_read_when_asked_for() -> None:
    from agent import __version__

    loaded, shown = _loaded_after("--version")
    assert shown == f"kitfleet {__version__}"
    assert loaded == []


def test_polling_the_fleet_loads_no_mdns_library() -> None:
    """`kitfleet kits` browses only for a kit that does not answer: with every kit answering,
    zeroconf (~5 % of the command's start) is never imported."""
    code = "import sys\nimport app.fleet.ops, app.cli.kits\nprint('zeroconf' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"


def test_the_parsers_choices_are_their_sources() -> None:
    """The parser's choices are written out (tuples cost nothing to import); they must stay
    the ones the contract, the inspector, the job spec and the quantizer accept."""
    from agent.toolkit.quantize import METHODS
    from agent.wire import SCOPES, Task
    from app.fleet.inspection import NORMALISE_CHOICES
    from app.fleet.jobspec import KINDS
    from app.fleet.quantize import MODES

    assert choices.SCOPES == SCOPES
    assert get_args(Task) == choices.TASKS
    assert choices.NORMALISE == NORMALISE_CHOICES
    assert choices.JOB_KINDS == KINDS
    assert choices.QUANTIZE_MODES == MODES
    assert tuple(METHODS) == choices.QUANTIZE_METHODS


@pytest.mark.parametrize(("preset", "expected"), [(None, "__all__"), ("", "")])
def test_commands_skip_pydantics_plugin_search_unless_told(preset: str | None, expected: str) -> None:
    """Searching reads every installed distribution's entry points; kitfleet has no plugins.
    Job workers inherit the agent's setting (agent.jobs.spares.worker_env)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    code = (
        "import os, sys\nfrom app.cli import main\nfrom agent.jobs.spares import worker_env\n"
        "try:\n    main(['kits', '--help'])\nexcept SystemExit:\n    pass\n"
        "name = 'PYDANTIC_DISABLE_PLUGINS'\n"
        "print(repr(os.environ.get(name)), repr(worker_env(1).get(name)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == f"{expected!r} {expected!r}"


def test_the_inventory_runs_no_installed_sqlite_utils_plugin(tmp_path: Path) -> None:
    """An installed package that declares a sqlite-utils plugin (here a real distribution on the
    path, with its entry point) runs no code in the app, which holds the kits' tokens; looking
    for plugins also cost each command's start ~20 ms."""
    site = tmp_path / "site"
    (site / "planted-0.1.dist-info").mkdir(parents=True)
    (site / "planted-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: planted\nVersion: 0.1\n"
    )
    (site / "planted-0.1.dist-info" / "entry_points.txt").write_text("[sqlite_utils]\nplanted = planted\n")
    marker = tmp_path / "ran"
    (site / "planted.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from sqlite_utils import hookimpl\n\n@hookimpl\ndef prepare_connection(conn):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('on the connection')\n"
    )
    code = (
        "import sys\nfrom pathlib import Path\nfrom app.fleet.inventory import Inventory\n"
        "Inventory(Path(sys.argv[1])).db.execute('SELECT 1')\n"
        "import importlib.metadata as m\nprint([e.name for e in m.entry_points(group='sqlite_utils')])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    (tmp_path / "home").mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "home")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "planted" in done.stdout, "the plugin is installed where the app could find it"
    assert not marker.exists(), marker.read_text()
