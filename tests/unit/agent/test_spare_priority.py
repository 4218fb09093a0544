"""A spare worker waits at nice 19 only where the agent may set it back: the prediction
(`may_restore_priority`) checked against the kernel itself, without CAP_SYS_NICE (as the
agent's own user runs it)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.jobs.spares import may_restore_priority

# As the agent's user: predict, then lower a child to 19 and try to set it back, as hand() does.
_PROBE = """
import os, subprocess, sys, time
from agent.jobs.spares import may_restore_priority
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                         preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 19))
try:
    os.setpriority(os.PRIO_PROCESS, child.pid, 0)
    restored = True
except PermissionError:
    restored = False
finally:
    child.kill()
print(may_restore_priority(0), restored)
"""


SETPRIV = shutil.which("setpriv")  # util-linux


@pytest.mark.skipif(SETPRIV is None or os.geteuid() != 0, reason="needs root and util-linux's setpriv")
@pytest.mark.parametrize(("limit", "expected"), [(0, "False False"), (20, "True True")])
def test_the_prediction_matches_what_the_kernel_allows(limit: int, expected: str) -> None:
    """RLIMIT_NICE 0 (a plain login): a child lowered to 19 cannot be set back, so spares are not
    lowered; 20 (systemd's LimitNICE=+0, in the unit kitfleet provisions): it can."""
    assert SETPRIV is not None
    hard = resource.getrlimit(resource.RLIMIT_NICE)[1]
    if hard != resource.RLIM_INFINITY and limit > hard:
        pytest.skip(f"RLIMIT_NICE's hard limit here is {hard} and cannot be raised (no CAP_SYS_RESOURCE)")
    done = subprocess.run(  # root without CAP_SYS_NICE: as an unprivileged user for priorities
        [SETPRIV, "--bounding-set", "-sys_nice", sys.executable, "-c", _PROBE],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NICE, (limit, limit)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.stdout.strip() == expected, done.stderr


def test_root_with_cap_sys_nice_may() -> None:
    status = Path("/proc/self/status").read_text()
    caps = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
    if not caps >> 23 & 1:
        pytest.skip("no CAP_SYS_NICE here")
    assert may_restore_priority(0)
