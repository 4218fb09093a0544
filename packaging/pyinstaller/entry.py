"""The bundle's entry point: the app and CLI, or (hidden) the agent the demo starts.

A frozen program has no `python -m` or `-c`: the demo's local agents are started as
`sys.executable -m agent run ...` (app/fleet/localagent.py), which in the bundle is
`kitfleet -m agent run ...`, and they start their own children (model checks, probes) as
`sys.executable -c CODE ...`; those argvs run the bundled agent and code, not the CLI. Before
anything else the kit's glibc is compared with the one the bundle was built on (its floor),
so an old laptop gets a sentence instead of a loader error.
"""

from __future__ import annotations

import os
import sys

GLIBC_FILE = "glibc-floor.txt"  # written by kitfleet.spec: the build machine's glibc


def _floor() -> str | None:
    folder = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(folder, GLIBC_FILE)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def glibc_problem(have: str, floor: str | None) -> str | None:
    """A message when this system's glibc is older than the bundle's floor, else None."""
    if not floor or not have:
        return None
    if tuple(map(int, have.split("."))) >= tuple(map(int, floor.split("."))):
        return None
    return (
        f"kitfleet: this bundle needs glibc {floor} or newer and this system has {have}; "
        "install kitfleet with pip instead (pip install 'kitfleet[app]'), or use a bundle "
        "built on an older system (README: Provisioning and packaging)"
    )


def _as_python() -> None:
    """The agent starts its helpers as `sys.executable -m agent ...` / `-c ...` unless frozen,
    when it takes sys.executable for a frozen kitfleet-agent. Here sys.executable is the app,
    which answers those like python does, so the agent is told it runs as under python."""
    sys.frozen = False  # type: ignore[attr-defined]


def main() -> int:
    have = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.35"
    problem = glibc_problem(have.rpartition(" ")[2], _floor())
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if sys.argv[1:3] == ["-m", "agent"]:
        _as_python()
        from agent.cli import main as agent_main

        return agent_main(sys.argv[3:])
    if sys.argv[1:2] == ["-c"] and len(sys.argv) > 2:  # the agent's children (agent/warm.py BOOT)
        _as_python()
        code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 - as python -c
        return 0
    from app.cli import main as app_main

    return app_main()


if __name__ == "__main__":
    sys.exit(main())
