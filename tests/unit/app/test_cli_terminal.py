"""Terminal manners (issue 20): lines fit the terminal keeping their end, a pipe reader that
leaves is no traceback, `models list` has its legend and human sizes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agent.wire import JobInfo, JobRequest, ModelInfo, ModelVersion
from app.cli.jobs.view import bar_line, fit
from app.cli.models import model_lines


def _job(done: int, total: int, state: str = "running", error: str | None = None) -> JobInfo:
    now = time.time()
    return JobInfo.model_validate(
        {
            "job_id": "6287667874af" + "0" * 12,
            "kind": "batch-infer",
            "label": "",
            "state": state,
            "request": JobRequest(kind="benchmark", params={"model": "m"}).model_dump(),
            "attempts": 1,
            "progress": {"done": done, "total": total},
            "created_at": now,
            "started_at": now,
            "finished_at": None,
            "updated_at": now,
            "error": error,
        }
    )


def test_a_watch_line_on_80_columns_keeps_its_percentage() -> None:
    """It used to be cut at the terminal's edge: "50%" showed as "5"."""
    line = bar_line("a-kit-with-a-long-name", _job(5, 10, error="a long note " * 10), width=79)
    assert len(line) <= 79
    assert " 50% " in line
    assert line.endswith("5/10"), "the note gives way, the figures stay"
    assert "[" in line
    assert "#" in line
    assert len(bar_line("kit", _job(5, 10))) > 79, "unfitted (a log, not a terminal): whole"


def test_fit_cuts_the_middle() -> None:
    assert fit("abcdefghij", 20) == "abcdefghij"
    assert fit("abcdefghij", 5) == "ab…ij"
    assert len(fit("x" * 300, 80)) == 80


def test_models_list_has_its_legend_and_human_sizes() -> None:
    version = ModelVersion.model_validate(
        {
            "version": "1.0",
            "task": "classification",
            "precision": "fp32",
            "sha256": "ab" * 32,
            "size_bytes": 3_400_000,
            "installed_at": time.time(),
            "active": True,
        }
    )
    info = ModelInfo(
        name="digits", task="classification", active_version="1.0", previous_version=None, versions=[version]
    )
    lines = model_lines("kitA", [info])
    assert lines[-1].startswith("(* serving, < previous")
    assert "3.2 MiB" in lines[1]
    assert "3400000" not in "".join(lines)
    assert model_lines("kitA", []) == ["no models on kitA"]


def test_a_pipe_reader_that_leaves_is_no_traceback(tmp_path: Path) -> None:
    """`kitfleet kits | head` printed a BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app", "--home", str(tmp_path), "kits"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141
