"""A worker process started ahead of its job, so a job starts in milliseconds, not a second.

A spare is an ordinary worker (`worker.py --spare`): its own session and process group,
its stdin a life line only the agent holds (it dies with the agent, spare or not), one
job and then it exits. It has already imported NumPy, ONNX Runtime and the kinds when its
job comes, as one line on a pipe of its own. Its BLAS threads are fixed at one (no job's
limit is below that); each job's model threads come from its own session options.

A spare imports at the lowest CPU priority, so its second of imports runs on cores nothing
else wants, not beside a running job on the one core other work leaves it; its job runs at
the priority a cold worker's job runs at. Two settings make that priority (Linux):
- its session's autogroup (a spare leads a session of its own, as a cold worker does): where
  the scheduler groups processes by session (`sched_autogroup_enabled`, outside a cgroup with
  its own CPU share) it shares a core group against group, whatever the nice value of a
  process in the group. A new session's group starts at nice 0, whatever the agent's (whose
  session may be the kernel's default group, which has none); any process may set its own
  user's autogroups to nice 0 or more;
- its threads' nice value, within the group (and within the agent's cgroup under systemd):
  set back only where the agent may (`may_restore_priority`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from agent.jobs.layout import SPARE_FLAG, THREAD_ENV, WORKER_MODULE
from agent.warm import Warm, boot_command, die_with_the_agent, start_warm

__all__ = [
    "NEW_GROUP_NICE",
    "SPARE_NICE",
    "WARM_KINDS",
    "Spare",
    "Spares",
    "autogroup_nice",
    "die_with_the_agent",
    "may_restore_priority",
    "set_autogroup_nice",
    "worker_command",
    "worker_env",
]

SPARE_ERR = ".spare.err"  # what a spare says before it has a job (an import failure)
# Kinds that run a model: what a spare has imported saves them a second or more. Others (a
# command) start cold, as light as before, and never make a spare be kept.
WARM_KINDS = frozenset({"batch-infer", "benchmark", "evaluate", "stream"})
SPARE_NICE = 19  # a spare's priority until its job comes: the lowest
NEW_GROUP_NICE = 0  # a new session's autogroup's nice: a cold worker's job's, and a spare's job's
_SPARE_NICE_TEXT = str(SPARE_NICE).encode()  # made before fork: a child's preexec_fn writes it


def worker_command(*args: str) -> list[str]:
    """The worker's command line, under the shared BOOT (`agent/warm.py`; started with
    `die_with_the_agent`, a worker dies with the agent even while starting up). It names the
    worker module (and a cold worker's job), which is how a restarted agent recognises a
    leftover worker."""
    return boot_command(WORKER_MODULE, *args)


def worker_env(threads: int) -> dict[str, str]:
    """The environment a worker starts with: little of the agent's, thread pools held to `threads`."""
    kept = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYDANTIC_DISABLE_PLUGINS")  # see agent.cli.main
    keep = {k: v for k, v in os.environ.items() if k in kept}
    return {
        **keep,
        "PYTHONPATH": os.pathsep.join(sys.path),
        **{name: str(threads) for name in THREAD_ENV},
    }


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as a container or `taskset` sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def may_restore_priority(base: int) -> bool:
    """Whether this process may set a child of its user from nice 19 back to `base`: with
    CAP_SYS_NICE, or where RLIMIT_NICE allows `base` (the unit kitfleet provisions sets
    LimitNICE=+0). Tried on a thread of its own, which the kernel judges as it would the child
    (a container's root may lack the capability): lowered, then set back. Where it may not,
    spares import at `base`, as before."""
    allowed: list[bool] = []

    def attempt() -> None:
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, SPARE_NICE)
            os.setpriority(os.PRIO_PROCESS, tid, base)
        except OSError:
            allowed.append(False)
        else:
            allowed.append(True)

    probe = threading.Thread(target=attempt, name="nice-probe")
    probe.start()
    probe.join()
    return allowed == [True]


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The nice value of a process's autogroup, None where the kernel keeps none."""
    try:
        with open(f"/proc/{pid}/autogroup") as group:  # "/autogroup-25 nice 0"
            return int(group.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def set_autogroup_nice(pid: int, nice: int) -> None:
    """Set a process's autogroup to `nice` (>= 0 needs no privilege). The kernel takes one
    change of any autogroup per 0.1 s from a process without CAP_SYS_ADMIN (EAGAIN): tried
    again for up to half a second, then OSError."""
    for attempt in range(10):
        try:
            with open(f"/proc/{pid}/autogroup", "w") as group:
                group.write(str(nice))
            return
        except BlockingIOError:
            if attempt == 9:
                raise
            time.sleep(0.05)


def _start_low(threads_too: bool) -> None:
    """A spare's `preexec_fn` (after `setsid`): die with the agent, and import at the lowest
    priority. Only system calls after fork, as `die_with_the_agent`; a refused one is left."""
    die_with_the_agent()
    with contextlib.suppress(OSError):
        group = os.open("/proc/self/autogroup", os.O_WRONLY)
        try:
            os.write(group, _SPARE_NICE_TEXT)
        finally:
            os.close(group)
    if threads_too:
        os.setpriority(os.PRIO_PROCESS, 0, SPARE_NICE)


@dataclass
class Spare(Warm):
    base_priority: int | None = None  # the agent's nice, where it may set a spare's threads back

    def hand(self, folder: Path, job_id: str, threads: int, at: float) -> None:
        """Give the spare its job at a cold worker's priority again: its autogroup at a new
        session's nice, its threads at the agent's where they were started low (raises
        OSError when that is refused: the caller starts the job cold); its stdin stays open
        as its life line. Linux keeps a nice value per thread: this sets the spare's main
        thread, which runs the job and starts its threads, and they inherit it."""
        if autogroup_nice(self.process.pid) not in (None, NEW_GROUP_NICE):
            set_autogroup_nice(self.process.pid, NEW_GROUP_NICE)
        if self.base_priority is not None:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, self.base_priority)
        self.send(f"{folder}\t{job_id}\t{threads}\t{at}")


class Spares:
    """At most one spare worker, started once a job that runs a model has started (a kit that
    runs none keeps no idle process), and again after each job that took it, once running jobs
    leave a core free and none is a stream. A spare's imports take a second of CPU or more:
    jobs holding every core would lose it (benchmarks/batch_infer.py, 2-thread job on 2 cores:
    1.17x the plain loop beside the next spare's start, 1.42x without), and a stream's answers
    at a camera's pace would wait for a core behind them. A job started meanwhile starts cold,
    paying those imports in its own time rather than in the running jobs'. A core the jobs
    leave free may still be busy with other work on the kit: the spare's low priority keeps
    its imports off the jobs' cores then (1-thread job beside a CPU hog: see the module)."""

    def __init__(self, jobs_dir: Path, enabled: bool = True) -> None:
        self.jobs_dir = jobs_dir
        self.enabled = enabled
        self.wanted = False
        self.cores = usable_cores()
        priority = os.getpriority(os.PRIO_PROCESS, 0)  # what a spare's job runs at: the agent's
        lower = enabled and priority < SPARE_NICE and may_restore_priority(priority)
        self.priority = priority if lower else None
        self._spare: Spare | None = None

    def take(self, kind: str) -> Spare | None:
        """The spare for a job of `kind`, if it is one that gains and a spare is alive; the
        caller hands it the job."""
        if kind not in WARM_KINDS:
            return None
        self.wanted = self.enabled
        spare, self._spare = self._spare, None
        if spare is not None and not spare.alive():
            spare.let_go()  # it died waiting (killed by hand, an import failed): start cold
            return None
        return spare

    def refill(self, held_threads: int = 0, running_kinds: Collection[str] = ()) -> None:
        """Start a spare if one is wanted, none is waiting, the running jobs (of `running_kinds`,
        holding `held_threads`) leave a core free and none of them is a stream."""
        if not self.wanted or self._spare is not None:
            return
        if held_threads >= self.cores or "stream" in running_kinds:
            return
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with (self.jobs_dir / SPARE_ERR).open("wb") as err:
            warm = start_warm(
                WORKER_MODULE,
                [SPARE_FLAG, str(self.jobs_dir)],
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=worker_env(1),
                cwd=self.jobs_dir,
                preexec_fn=functools.partial(_start_low, self.priority is not None),
            )
        self._spare = Spare(warm.process, warm.job_pipe, self.priority)

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(spare.process.pid, signal.SIGKILL)
            spare.process.wait(5)
            spare.let_go()
