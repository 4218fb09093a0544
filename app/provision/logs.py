"""`ssh-logs`: read the agent's service log over SSH, for when the API itself does not answer."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal, cast

from app.provision.errors import ProvisionError
from app.provision.knownhosts import KnownHosts
from app.provision.layout import Layout
from app.provision.records import Record
from app.provision.service import Service
from app.provision.session import SshSession
from app.provision.target import Login, SshTarget


def fetch_logs(home: Path, record: Record, login: Login, lines: int = 200) -> str:
    """The service log (journal or supervisor log) plus the agent's own log, newest last."""
    if login.accept_new_host_key:
        raise ProvisionError("ssh-logs only talks to kits whose host key is already trusted")
    target = SshTarget.parse(record.target)
    layout = Layout(
        record.root,
        record.data_dir,
        cast(Literal["systemd", "user"], record.service),
        "kitfleet-agent" if record.service == "systemd" else None,
    )
    with SshSession.connect(target, login, KnownHosts(home)) as session:
        service = Service(session, layout, record.python).log_tail(lines)
        agent_log = session.run(f"tail -n {lines} {shlex.quote(record.data_dir + '/agent.log')}")
    parts = [f"== service log ({layout.service}) ==", service]
    if agent_log.status == 0 and agent_log.stdout.strip():
        parts += [f"== {record.data_dir}/agent.log ==", agent_log.stdout.rstrip()]
    return "\n".join(parts)
