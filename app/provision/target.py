"""What to provision: the SSH address, how to log in, and how the kit should be laid out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.provision.errors import ProvisionError

ServiceKind = Literal["auto", "systemd", "user"]
_TARGET = re.compile(r"^(?P<user>[^@\s]+)@(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """`USER@HOST[:PORT]`; an IPv6 host goes in brackets (`root@[fe80::1]:2222`)."""
        match = _TARGET.match(text.strip())
        if match is None:
            raise ProvisionError(
                f"{text!r} is not USER@HOST[:PORT] (e.g. root@10.0.0.7 or kit@kit-01.local:2222)"
            )
        port = int(match["port"] or 22)
        if not 0 < port < 65536:
            raise ProvisionError(f"{text!r}: port {port} is out of range")
        return cls(match["user"], match["host"].strip("[]"), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + ("" if self.port == 22 else f":{self.port}")


@dataclass(frozen=True)
class Login:
    """How to authenticate; with neither key nor password, the SSH agent and ~/.ssh keys are tried."""

    key_file: Path | None = None
    password: str | None = None
    accept_new_host_key: bool = False
    # The fingerprint the technician confirmed (window): only exactly this new key is trusted.
    confirmed_fingerprint: str | None = None
    timeout_s: float = 15.0


@dataclass(frozen=True)
class KitOptions:
    """Where and how the agent is installed on the kit, and the settings it is started with."""

    kit_root: str | None = None  # default: /opt/kitfleet-agent as root, else ~/.local/share/...
    service: ServiceKind = "auto"
    python: str = "python3"  # the kit's interpreter the agent's venv is made from
    name: str | None = None  # display name; default the kit's host name
    agent_port: int = 8443
    agent_settings: dict[str, object] = field(default_factory=dict)  # extra agent.json settings
    remote_env: dict[str, str] = field(default_factory=dict)  # environment of commands on the kit
    health_timeout_s: float = 60.0
