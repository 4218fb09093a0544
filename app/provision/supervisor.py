"""The agent's user-level service where systemd is not available; copied to the kit and run there.

Standard library only, run by the kit's own python3. It mirrors the systemd unit's policy:
`start` daemonizes (double fork + setsid, so the SSH session can end), writes a pid file, runs
the agent and restarts it when it fails (never after a clean exit), with a back-off and a start
limit (MAX_STARTS within INTERVAL_S, then it gives up and says so in the log). `stop` sends
SIGTERM and waits; the agent gets SIGTERM too and shuts down cleanly. The agent dies with the
supervisor (PR_SET_PDEATHSIG), so a killed supervisor never leaves an orphan holding the port.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

MAX_STARTS = 5
INTERVAL_S = 300.0
RESTART_S = 2.0
STOP_TIMEOUT_S = 30.0
LOG_MAX_BYTES = 5 << 20
PENDING = "upgrade-pending.json"  # agent/bundles/upgrade_state.py writes and clears these
REVERTED = "upgrade-reverted.json"
EXIT_RESTART = 75  # agent/bundles/restart.py: restart me into the venv `current` now points at


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(pid_file: str) -> int | None:
    try:
        with open(pid_file) as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _log(log_path: str, message: str) -> None:
    with open(log_path, "a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}\n")


def _rotate(log_path: str) -> None:
    try:
        if os.path.getsize(log_path) > LOG_MAX_BYTES:
            os.replace(log_path, f"{log_path}.1")
    except OSError:
        pass


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.starts: list[float] = []

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def asked_to_stop(self) -> bool:
        """Set by the signal handler while `run` waits; a method so the check is not folded away."""
        return self.stopping

    def _state(self, **state: object) -> None:
        _write(self.args.pid_file + ".state", json.dumps(state))

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        delay = RESTART_S
        while not self.stopping:
            now = time.monotonic()
            self.starts = [t for t in self.starts if now - t < self.args.interval] + [now]
            if len(self.starts) > self.args.max_starts:
                _log(
                    self.args.log,
                    f"start limit hit: {self.args.max_starts} starts within "
                    f"{self.args.interval:g} s; giving up until started again",
                )
                self._state(running=False, gave_up=True)
                return 1
            _rotate(self.args.log)
            _log(self.args.log, "starting " + " ".join(self.args.command))
            with open(self.args.log, "ab") as log:
                self.child = subprocess.Popen(
                    self.args.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=_die_with_parent,
                    # the agent restarts itself into an upgrade only where it is restarted
                    env={**os.environ, "KITFLEET_SUPERVISED": "1"},
                )
            self._state(running=True, child_pid=self.child.pid, starts=len(self.starts))
            code = self.child.wait()
            if self.asked_to_stop():
                break
            if code == 0:
                _log(self.args.log, "agent exited cleanly; not restarting")
                self._state(running=False, last_exit=0)
                return 0
            if code != EXIT_RESTART:  # 75: the old agent asking to be restarted into the new one
                _revert_failed_upgrade(self.args.command, code, self.args.log)
            _log(self.args.log, f"agent exited with {code}; restarting in {delay:g} s")
            self._state(running=False, last_exit=code, restarting=True)
            deadline = time.monotonic() + delay
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            delay = min(delay * 2, 30.0)
        if self.child is not None:
            try:
                self.child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        _log(self.args.log, "stopped")
        self._state(running=False, stopped=True)
        return 0


def _revert_failed_upgrade(command: list[str], code: int, log_path: str) -> None:
    """A bundle's agent upgrade (agent/bundles/upgrade.py) leaves `<root>/upgrade-pending.json`
    until the new agent confirms it serves. If the agent run from `<root>/current` exits first,
    `current` goes back to the previous venv, and `upgrade-reverted.json` tells that agent to
    put the failure in the bundle journal (so the receipt reports it)."""
    bin_dir = os.path.dirname(command[0]) if command else ""
    if os.path.basename(os.path.dirname(bin_dir)) != "current":
        return
    root = os.path.dirname(os.path.dirname(bin_dir))
    pending, current = os.path.join(root, PENDING), os.path.join(root, "current")
    try:
        with open(pending) as handle:
            data = json.load(handle)
        new, previous = str(data["new"]), str(data["previous"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    venv = os.path.join(root, "venvs", previous)
    if os.path.basename(os.path.realpath(current)) != new or "/" in previous or not os.path.isdir(venv):
        return
    link = current + ".new"
    with contextlib.suppress(FileNotFoundError):
        os.remove(link)
    os.symlink(os.path.join("venvs", previous), link)
    os.replace(link, current)
    _write(os.path.join(root, REVERTED), json.dumps(dict(data, exit=code, reverted_at=time.time())))
    os.remove(pending)
    _log(log_path, f"the upgraded agent ({new}) exited with {code} before it served; back to {previous}")


def _daemonize(log_path: str) -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)


def start(args: argparse.Namespace) -> int:
    pid = _read_pid(args.pid_file)
    if pid is not None:
        print(f"already running (pid {pid})")
        return 0
    for path in (args.pid_file, args.log):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if not args.foreground:
        _daemonize(args.log)
    _write(args.pid_file, f"{os.getpid()}\n")
    try:
        return Supervisor(args).run()
    finally:
        if _read_pid(args.pid_file) == os.getpid():
            os.unlink(args.pid_file)


def stop(args: argparse.Namespace) -> int:
    pid = _read_pid(args.pid_file)
    if pid is None:
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the supervisor leads its own session
        print(f"killed (pid {pid}) after {args.timeout:g} s")
        return 1
    print(f"stopped (pid {pid})")
    return 0


def status(args: argparse.Namespace) -> int:
    pid = _read_pid(args.pid_file)
    try:
        with open(args.pid_file + ".state") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    print(json.dumps(dict(state, supervisor_pid=pid, supervised=pid is not None)))
    return 0 if pid is not None else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supervise.py", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--log", default=os.devnull)
    parser.add_argument("--max-starts", type=int, default=MAX_STARTS)
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    parser.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S)
    parser.add_argument("--foreground", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1 :]
    if args.action == "start" and not args.command:
        parser.error("start needs the command to supervise after --")
    return {"start": start, "stop": stop, "status": status}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
