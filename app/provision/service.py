"""Running the agent as a service: a hardened systemd unit, or the user-level supervisor.

The unit text is shared with the .deb (packaging/deb/build.py), so both install the same service.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from app.provision.layout import SERVICE_USER, UNIT_NAME, UNIT_PATH, Layout
from app.provision.session import SshSession

SUPERVISOR_SOURCE = Path(__file__).with_name("supervisor.py")
# The one privilege the agent is granted beyond its data dir: asking systemd-timedated to set the
# clock when a technician's pre-flight finds it drifted (`kitfleet set-clock`). The agent's
# `clock_control: auto` uses timedated only where this file exists (agent/clock.py).
POLKIT_RULE_NAME = "50-kitfleet-clock.rules"
POLKIT_RULE_DIR = "/etc/polkit-1/rules.d"


def polkit_clock_rule(user: str = SERVICE_USER) -> str:
    """polkit lets `user` set the time (only that; timedated still refuses while NTP runs)."""
    return f"""\
// kitfleet: the agent's service user may set the clock through systemd-timedated, nothing else.
polkit.addRule(function(action, subject) {{
    if (action.id == "org.freedesktop.timedate1.set-time" && subject.user == "{user}") {{
        return polkit.Result.YES;
    }}
}});
"""


def systemd_unit(agent: str, data_dir: str, user: str = SERVICE_USER) -> str:
    """Restarts on failure within a start limit; may write only its data dir."""
    return f"""\
[Unit]
Description=kitfleet agent: HTTPS API, model store and job queue of this edge AI kit
Documentation=https://github.com/kitfleet/kitfleet
After=network-online.target
Wants=network-online.target
# Five failed starts in five minutes: stop trying and leave the reason in the journal.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
User={user}
Group={user}
ExecStart={agent} run --data-dir {data_dir}
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
# A spare job worker imports at nice 19 and is set back to the agent's priority when its job
# comes; the limit lets it return to nice 0, never below.
LimitNICE=+0
# The agent writes nothing outside its data dir (identity, models, jobs, logs), and nothing
# there another local user may read: the database holds the pairing key and token hashes.
ReadWritePaths={data_dir}
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
CapabilityBoundingSet=
# Only the system calls an ordinary service makes, in the kit's native ABI; no clock, kernel
# log, hostname or namespace changes; other users' processes are hidden from it.
SystemCallFilter=@system-service
SystemCallArchitectures=native
ProtectClock=yes
ProtectKernelLogs=yes
ProtectHostname=yes
RestrictNamespaces=yes
ProtectProc=invisible
# GPUs stay visible (PrivateDevices would hide /dev/nvidia*); the user may need the video group.

[Install]
WantedBy=multi-user.target
"""


UPGRADE_SERVICE = "kitfleet-agent-upgrade.service"
UPGRADE_PATH = "kitfleet-agent-upgrade.path"


def upgrade_service_unit(root: str, data_dir: str, user: str = SERVICE_USER) -> str:
    """The root oneshot that applies an upgrade the hardened agent staged in its data dir
    (agent/bundles/apply_staged.py): it may write the install root and the data dir, and
    restart the agent; nothing else is granted."""
    agent = f"{root}/current/bin/kitfleet-agent"
    return f"""\
[Unit]
Description=kitfleet agent upgrade: install an upgrade the agent staged from a bundle, as root
Documentation=https://github.com/kitfleet/kitfleet
ConditionPathExists={data_dir}/upgrade/request.json
After={UNIT_NAME}

[Service]
Type=oneshot
ExecStart={agent} apply-upgrade --data-dir {data_dir} --venvs {root} --user {user}
TimeoutStartSec=3600
UMask=0022
# Writes a new venv under {root} and the outcome into the data dir; restarts the agent through
# systemctl. pip runs offline (--no-index) from the checked wheels; the trial agent runs as {user}.
ReadWritePaths={root} {data_dir}
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_SETUID CAP_SETGID CAP_KILL
SystemCallFilter=@system-service
SystemCallArchitectures=native
"""


def upgrade_path_unit(data_dir: str) -> str:
    """Starts the oneshot when the agent leaves an upgrade request."""
    request = f"{data_dir}/upgrade/request.json"
    return f"""\
[Unit]
Description=kitfleet agent upgrade: watch for an upgrade the agent staged
Documentation=https://github.com/kitfleet/kitfleet

[Path]
PathExists={request}
PathChanged={request}
Unit={UPGRADE_SERVICE}

[Install]
WantedBy=paths.target
"""


def _as(layout: Layout, command: str) -> str:
    """Run an agent command as the service's user, so the data dir keeps one owner."""
    if layout.run_as is None:
        return command
    return f"runuser -u {shlex.quote(layout.run_as)} -- {command}"


def agent_command(layout: Layout, agent: str, *args: str) -> str:
    return _as(layout, " ".join(shlex.quote(a) for a in (agent, *args)))


class Service:
    """Start, stop and read the log of the agent's service on one kit."""

    def __init__(self, session: SshSession, layout: Layout, python: str) -> None:
        self.session, self.layout, self.python = session, layout, python

    def install(self) -> None:
        lay = self.layout
        if lay.service == "systemd":
            self.session.check(
                f"id -u {SERVICE_USER} >/dev/null 2>&1 || useradd --system --home-dir "
                f"{shlex.quote(lay.data_dir)} --shell /usr/sbin/nologin {SERVICE_USER}",
                "creating the service user",
            )
            data = shlex.quote(lay.data_dir)
            self.session.check(
                f"mkdir -p {data} && chmod 0700 {data} && chown -R {SERVICE_USER}:{SERVICE_USER} {data}",
                "preparing the data dir",
            )
            self._put(UNIT_PATH, systemd_unit(lay.agent, lay.data_dir))
            units = posixpath.dirname(UNIT_PATH)
            self._put(f"{units}/{UPGRADE_SERVICE}", upgrade_service_unit(lay.root, lay.data_dir))
            self._put(f"{units}/{UPGRADE_PATH}", upgrade_path_unit(lay.data_dir))
            self.session.check(f"mkdir -p {POLKIT_RULE_DIR}", "making polkit's rules folder")
            self._put(f"{POLKIT_RULE_DIR}/{POLKIT_RULE_NAME}", polkit_clock_rule())
            self.session.check(
                f"systemctl daemon-reload && systemctl enable {UNIT_NAME} && "
                f"systemctl enable --now {UPGRADE_PATH}",
                "enabling the systemd units",
            )
        else:
            self._put(lay.supervisor, SUPERVISOR_SOURCE.read_text())

    def _put(self, path: str, text: str) -> None:
        sftp = self.session.sftp()
        with sftp.open(path + ".tmp", "w") as handle:
            handle.write(text.encode())
        sftp.posix_rename(path + ".tmp", path)

    def _supervisor(self, action: str, *extra: str) -> str:
        lay = self.layout
        return " ".join(
            shlex.quote(a)
            for a in (
                self.python,
                lay.supervisor,
                action,
                "--pid-file",
                lay.pid_file,
                "--log",
                lay.service_log,
                *extra,
            )
        )

    def start(self) -> None:
        if self.layout.service == "systemd":
            self.session.check(
                f"systemctl reset-failed {UNIT_NAME} 2>/dev/null; systemctl restart {UNIT_NAME}",
                "starting the agent's service",
            )
        else:
            self.session.check(
                self._supervisor("start", "--", self.layout.agent, "run", "--data-dir", self.layout.data_dir),
                "starting the agent's supervisor",
            )

    def stop(self) -> None:
        if self.layout.service == "systemd":
            self.session.run(f"systemctl stop {UNIT_NAME}")
        else:
            self.session.run(self._supervisor("stop"), timeout=60)

    def running(self) -> bool:
        if self.layout.service == "systemd":
            return self.session.run(f"systemctl is-active --quiet {UNIT_NAME}").status == 0
        return self.session.run(self._supervisor("status")).status == 0

    def log_tail(self, lines: int = 40) -> str:
        if self.layout.service == "systemd":
            command = f"journalctl -u {UNIT_NAME} -n {lines} --no-pager"
        else:
            command = f"tail -n {lines} {shlex.quote(self.layout.service_log)}"
        result = self.session.run(command)
        return result.stdout.strip() or result.stderr.strip() or "(the service log is empty)"
