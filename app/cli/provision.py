"""`kitfleet provision` installs, upgrades and adopts the agent over SSH; `ssh-logs` reads its log."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import emit, open_fleet, say
from app.cli.types import CommandFactory, Handler

# SSH (paramiko, cryptography) only for the commands that log in.
if TYPE_CHECKING:
    from app.provision import Login, Step

WHEELHOUSE_ENV = "KITFLEET_WHEELHOUSE"


def add_commands(command: CommandFactory) -> None:
    prov = command(
        "provision",
        "install or upgrade the agent on a kit over SSH, from an offline "
        "wheelhouse, start it as a service and adopt the kit",
    )
    prov.add_argument("target", metavar="USER@HOST[:PORT]", help="the kit's SSH login")
    _login_options(prov)
    prov.add_argument(
        "--wheelhouse",
        type=Path,
        help=f"the wheelhouse folder (default ${WHEELHOUSE_ENV} or <home>/wheelhouse)",
    )
    prov.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust the kit's SSH host key if it is not known yet (check the "
        "fingerprint printed); a changed key is refused regardless",
    )
    prov.add_argument("--name", help="the kit's display name (default: its host name)")
    prov.add_argument("--agent-port", type=int, default=8443, help="the agent's HTTPS port")
    prov.add_argument(
        "--service",
        choices=("auto", "systemd", "user"),
        default="auto",
        help="systemd unit (root, systemd running) or user-level supervisor",
    )
    prov.add_argument("--kit-root", help="install under this folder on the kit (data in <root>/data)")
    prov.add_argument("--kit-python", default="python3", help="the kit's interpreter")
    prov.add_argument(
        "--agent-setting",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a setting for the agent's agent.json (repeatable), e.g. mdns=false or host='\"127.0.0.1\"'",
    )
    prov.add_argument(
        "--remote-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for commands run on the kit (repeatable)",
    )

    logs = command("ssh-logs", "fetch the agent's service log from a kit over SSH", False)
    logs.add_argument("kit", help="name or device ID of a kit provisioned from this app")
    _login_options(logs)
    logs.add_argument("--lines", type=int, default=200, help="lines from the end of each log")


def _login_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, help="private key file (default: SSH agent, ~/.ssh)")
    parser.add_argument(
        "--password-prompt",
        action="store_true",
        help="ask for the SSH password (never taken from the command line)",
    )


def _login(args: argparse.Namespace, accept: bool = False) -> Login:
    from app.provision import Login

    password = (
        getpass.getpass(f"SSH password for {args.target if 'target' in args else args.kit}: ")
        if args.password_prompt
        else None
    )
    return Login(key_file=args.key, password=password, accept_new_host_key=accept)


def _pairs(items: list[str], what: str, as_json: bool) -> dict[str, object]:
    from app.provision import ProvisionError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ProvisionError(f"{what} {item!r} is not KEY=VALUE")
        if as_json:
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value  # a bare word is a string
        else:
            out[key] = value
    return out


async def _provision(args: argparse.Namespace) -> int:
    from app.provision import KitOptions, ProvisionRequest, SshTarget, async_provision

    fleet = open_fleet(args)
    wheelhouse = args.wheelhouse or Path(os.environ.get(WHEELHOUSE_ENV) or fleet.settings.home / "wheelhouse")
    options = KitOptions(
        kit_root=args.kit_root,
        service=args.service,
        python=args.kit_python,
        name=args.name,
        agent_port=args.agent_port,
        agent_settings=_pairs(args.agent_setting, "--agent-setting", True),
        remote_env={k: str(v) for k, v in _pairs(args.remote_env, "--remote-env", False).items()},
    )
    request = ProvisionRequest(
        SshTarget.parse(args.target), _login(args, args.accept_new_host_key), wheelhouse, options
    )
    shown: set[tuple[str, str]] = set()

    def progress(step: Step) -> None:
        if not args.json and (step.name, step.detail) not in shown:
            shown.add((step.name, step.detail))
            say(step.line(), file=sys.stderr)

    try:
        result = await async_provision(fleet, request, progress)
    finally:
        fleet.close()
    kit = result.kit
    what = (
        f"upgraded {result.previous_version} -> {result.version}"
        if result.previous_version
        else f"installed {result.version}"
    )
    emit(
        args,
        {
            "device_id": kit.device_id,
            "name": kit.name,
            "address": kit.address,
            "version": result.version,
            "previous_version": result.previous_version,
            "service": result.layout.service,
            "root": result.layout.root,
            "wheels_sent": len(result.copied.sent),
            "wheels_kept": len(result.copied.kept),
            "bytes_sent": result.copied.bytes_sent,
        },
        [
            f"{what} on {kit.name} ({kit.device_id[:16]}…) at {kit.address}; "
            f"{result.layout.service} service; adopted, scope {kit.scope}",
            f"copied {len(result.copied.sent)} wheels ({result.copied.bytes_sent >> 20} MiB), "
            f"{len(result.copied.kept)} already on the kit",
        ],
    )
    return 0


async def _ssh_logs(args: argparse.Namespace) -> int:
    from app.fleet.text import printable_lines
    from app.provision import ProvisionError, Records, fetch_logs

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
    finally:
        fleet.close()
    record = Records(fleet.settings.home).get(kit.device_id)
    if record is None:
        raise ProvisionError(
            f"{kit.name} was not provisioned over SSH from this app, so its SSH "
            "login is unknown; provision it with `kitfleet provision`"
        )
    if args.key is None and record.key_file:
        args.key = Path(record.key_file)
    print(printable_lines(fetch_logs(fleet.settings.home, record, _login(args), args.lines)))
    return 0


HANDLERS: dict[str, Handler] = {"provision": _provision, "ssh-logs": _ssh_logs}
