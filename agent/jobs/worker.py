"""`python -m agent.jobs.worker JOB_FOLDER JOB_ID`: run one attempt of one job.

Reads `spec.json`, runs the kind, reports on stdout (see `report.py`). Exit 0: done;
3: failed for good (bad input, no retry); anything else: failed, may be retried.
The job id on the command line lets a restarted agent recognise a leftover worker.

`--spare JOBS_DIR FD` is the same worker started ahead of its job (`spares.py`): it imports
the numeric libraries and the kinds, then waits for one line on the pipe FD,
`JOB_FOLDER<TAB>JOB_ID<TAB>THREADS<TAB>HANDED_AT`, and runs that job exactly as above, in
its own folder (which is how a restarted agent recognises it), with its stderr in the job's
`worker.err`. One spare runs one job, then exits, as a cold worker does.

The agent starts either through `agent.warm.BOOT`, which watches the life line (stdin) before
anything is imported, so a worker dies with its agent even while it is still starting.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agent.errors import Refusal
from agent.jobs.energy import JobMeter
from agent.jobs.errors import JobFailed, PermanentFailure
from agent.jobs.layout import (
    HANDED_AT_ENV,
    OUTCOME,
    PERMANENT_EXIT,
    RESULTS,
    SPARE_FLAG,
    SPEC,
    THREAD_ENV,
    WORKER_ERR,
)
from agent.jobs.report import Reporter
from agent.toolkit.durable import write_atomic
from agent.warm import read_line

FAILED_EXIT = 1


def main(argv: list[str]) -> int:
    if argv[0] == SPARE_FLAG:
        _warm_up()
        job = read_line(int(argv[2]))
        if job is None:  # the agent let the spare go without a job
            return 0
        folder, handed_at = _take_job(job)
        how = "kept ready"
    else:
        folder, how = Path(argv[0]), "started cold"
        handed_at = float(os.environ.get(HANDED_AT_ENV, "nan"))
    spec = json.loads((folder / SPEC).read_text())
    report = Reporter(sys.stdout, folder / RESULTS, spec["max_result_bytes"])
    report.log(f"worker {how}, running {time.monotonic() - handed_at:.3f} s after the start")
    try:
        with JobMeter(spec) as energy:
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
    summary = energy.added_to(summary)
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
    if kind == "fine-tune":
        from agent.jobs.kinds import fine_tune

        return fine_tune.run(spec, report)
    raise PermanentFailure(f"this worker does not know job kind {kind!r}")


def _warm_up() -> None:
    """What the kinds import, done before a job comes (quantize's onnx stays cold: it is rare
    and slow anyway, and would double a spare's memory)."""
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401

        from agent.jobs.kinds import batch_infer, benchmark, evaluate, stream  # noqa: F401
    except Exception:  # the job imports it again and fails there, in its own log
        return


def _take_job(job: str) -> tuple[Path, float]:
    """Become the job's worker: its folder, thread limits and stderr."""
    folder, job_id, threads, handed_at = job.split("\t")
    os.chdir(folder)  # /proc/PID/cwd names the job: how a restarted agent finds a leftover worker
    err = os.open(Path(folder) / WORKER_ERR, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(err, 2)
    os.close(err)
    # for anything the job starts (a command's program); this process's own pools are sized
    # by the job's session options, its BLAS pool was made for one thread
    os.environ.update({name: threads for name in THREAD_ENV})
    os.environ["KITFLEET_JOB_ID"] = job_id
    _threads_at_main_priority()
    return Path(folder), float(handed_at)


def _threads_at_main_priority() -> None:
    """A spare waited at the lowest priority and the agent has set this (main) thread back to
    its own (`spares.py`); threads started while it waited (the life line's watch, any an
    import started) follow, so nothing of the job runs low. Linux keeps a priority per thread."""
    with contextlib.suppress(OSError):
        main = os.getpriority(os.PRIO_PROCESS, 0)
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError, ValueError):
                os.setpriority(os.PRIO_PROCESS, int(tid), main)


if __name__ == "__main__":
    code = main(sys.argv[1:])  # an exception leaves the usual way, its traceback in worker.err
    sys.stdout.flush()
    sys.stderr.flush()
    # The outcome is kept on disk and told over the pipe, and every kind closes its files: out
    # at once. The agent ends the job when this process exits, and tearing down ONNX Runtime,
    # its sessions and the decoders' memory took 0.06-0.2 s of every job for nothing.
    os._exit(code)
