"""Install, upgrade and adopt the agent on a kit over SSH, from an offline wheelhouse."""

from __future__ import annotations

from app.provision.errors import (
    AuthFailed,
    HostKeyChanged,
    HostKeyUnknown,
    InstallFailed,
    ProvisionError,
    SshUnreachable,
    Unsupported,
    UpgradeFailed,
    WheelhouseError,
)
from app.provision.hostkey import HostKeyCheck, probe_host_key
from app.provision.knownhosts import KnownHosts
from app.provision.logs import fetch_logs
from app.provision.provisioner import (
    STEPS,
    ProvisionRequest,
    ProvisionResult,
    Step,
    async_provision,
)
from app.provision.records import Record, Records
from app.provision.target import KitOptions, Login, SshTarget

__all__ = [
    "STEPS",
    "AuthFailed",
    "HostKeyChanged",
    "HostKeyCheck",
    "HostKeyUnknown",
    "InstallFailed",
    "KitOptions",
    "KnownHosts",
    "Login",
    "ProvisionError",
    "ProvisionRequest",
    "ProvisionResult",
    "Record",
    "Records",
    "SshTarget",
    "SshUnreachable",
    "Step",
    "Unsupported",
    "UpgradeFailed",
    "WheelhouseError",
    "async_provision",
    "fetch_logs",
    "probe_host_key",
]
