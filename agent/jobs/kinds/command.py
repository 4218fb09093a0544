"""`command`: run an allow-listed program with an argv list (never a shell string).

Output lines go to the job's log; the program runs in the job's results folder, which
is where it may leave files (they count as the job's results only under known names).
"""

from __future__ import annotations

import subprocess
from typing import Any

from agent.jobs.errors import JobFailed
from agent.jobs.report import Reporter

ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "KITFLEET_JOB_ID")


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    import os

    argv: list[str] = spec["params"]["argv"]
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP}
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=report.results,
        env=env,
    )
    assert process.stdout is not None
    lines = 0
    for raw in iter(lambda: process.stdout.readline(8192), b""):  # type: ignore[union-attr]
        report.log(raw.decode("utf-8", "replace").rstrip("\n"))
        lines += 1
    code = process.wait()
    if code != 0:
        raise JobFailed(f"{argv[0]} exited with status {code}")
    return {"exit_code": code, "output_lines": lines}
