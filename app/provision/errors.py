"""Why provisioning stopped, each phrased so the technician knows what to fix."""

from __future__ import annotations

from app.fleet.errors import Error


class ProvisionError(Error):
    """Base of every provisioning failure the technician can act on."""


class SshUnreachable(ProvisionError):
    pass


class HostKeyUnknown(ProvisionError):
    """The kit's SSH host key is not in the known-hosts store; nothing was sent to it."""

    def __init__(self, host: str, key_type: str, fingerprint: str) -> None:
        super().__init__(
            f"{host} is not a known SSH host; its {key_type} key is {fingerprint}. Nothing was "
            "sent to it. Check the fingerprint on the kit's console "
            "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then run again with "
            "--accept-new-host-key"
        )
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint


class HostKeyChanged(ProvisionError):
    """The kit presents another host key than the one trusted before: refused always."""

    def __init__(self, host: str, fingerprint: str, known: str, store: str) -> None:
        super().__init__(
            f"{host} presents SSH host key {fingerprint} but {known} was trusted before; "
            "refusing to connect (it may be an impostor). If the kit was reinstalled on purpose, "
            f"remove its line from {store} and provision again"
        )
        self.host = host
        self.fingerprint = fingerprint


class AuthFailed(ProvisionError):
    pass


class Unsupported(ProvisionError):
    """The kit's architecture, OS or Python cannot run the agent from this wheelhouse."""


class WheelhouseError(ProvisionError):
    pass


class InstallFailed(ProvisionError):
    pass


class UpgradeFailed(ProvisionError):
    """A new version did not come up; the previous agent is running again."""
