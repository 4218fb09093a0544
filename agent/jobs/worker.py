"""`python -m agent.jobs.worker JOB_FOLDER JOB_ID`: run one attempt of one job.

Reads `spec.json`, runs the kind, reports on stdout (see `report.py`). Exit 0: done;
3: failed for good (bad input, no retry); anything else: failed, may be retried.
The job id on the command line lets a restarted agent recognise a leftover worker.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from agent.errors import Refusal
from agent.jobs.errors import JobFailed, PermanentFailure
from agent.jobs.layout import OUTCOME, PERMANENT_EXIT, RESULTS, SPEC
from agent.jobs.report import Reporter
from agent.toolkit.durable import write_atomic

FAILED_EXIT = 1


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    _die_with_the_agent()
    spec = json.loads((folder / SPEC).read_text())
    report = Reporter(sys.stdout, folder / RESULTS, spec["max_result_bytes"])
    try:
        summary = run(spec, report)
    except (PermanentFailure, Refusal) as exc:
        report.error(getattr(exc, "message", str(exc)))
        return PERMANENT_EXIT
    except JobFailed as exc:
        report.error(str(exc))
        return FAILED_EXIT
    except OSError as exc:  # told over the pipe: a full disk has no room for a traceback
        if exc.errno != errno.ENOSPC:
            raise
        report.error(f"the kit's disk is full ({exc}); free space on the kit, then run the job again")
        return FAILED_EXIT
    _keep_outcome(folder, summary)
    report.result(summary)
    return 0


def _keep_outcome(folder: Path, summary: dict[str, Any]) -> None:
    """The summary, durably, before the agent hears of it (see layout.OUTCOME). Without room
    on the disk it is skipped: the agent still hears the result over the pipe."""
    with contextlib.suppress(OSError):
        write_atomic(folder / OUTCOME, json.dumps(summary).encode())


def run(spec: dict[str, Any], report: Reporter) -> dict[str, Any]:
    kind = spec["kind"]
    if kind == "batch-infer":
        from agent.jobs.kinds import batch_infer

        return batch_infer.run(spec, report)
    if kind == "benchmark":
        from agent.jobs.kinds import benchmark

        return benchmark.run(spec, report)
    if kind == "evaluate":
        from agent.jobs.kinds import evaluate

        return evaluate.run(spec, report)
    if kind == "quantize":
        from agent.jobs.kinds import quantize

        return quantize.run(spec, report)
    if kind == "command":
        from agent.jobs.kinds import command

        return command.run(spec, report)
    if kind == "stream":
        from agent.jobs.kinds import stream

        return stream.run(spec, report)
    raise PermanentFailure(f"this worker does not know job kind {kind!r}")


def _die_with_the_agent() -> None:
    """The agent holds our stdin open; EOF means it died, so stop before a restart re-runs us."""

    def watch() -> None:
        while os.read(0, 4096):  # the raw fd: a buffered stdin would block interpreter exit
            pass
        if os.getpgrp() == os.getpid():  # we lead our group (the agent starts us so)
            os.killpg(os.getpgrp(), signal.SIGKILL)  # with anything this job started
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="agent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
