"""The kit-side commands: `kitfleet-agent import FILE.kfb` and `kitfleet-agent signers ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "apply_upgrade_command", "import_command", "signers_command"]

Command = Callable[[str, str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    imp = command("import", "verify a signed bundle (FILE.kfb) and apply it once, with no laptop")
    imp.add_argument("file", type=Path, metavar="FILE.kfb", help="the bundle")
    imp.add_argument("--json", action="store_true", help="print JSON")
    signers = command("signers", "the app keys this kit trusts to sign bundles")
    signers.add_argument("action", choices=("list", "revoke", "trust"), help="what to do")
    signers.add_argument("arg", nargs="?", metavar="KEYID|FILE", help="revoke: the key id; trust: a key file")
    signers.add_argument("--label", default="trusted by hand", help="trust: a name for the key")
    signers.add_argument("--json", action="store_true", help="print JSON")
    apply = command(
        "apply-upgrade",
        "as root: install an agent upgrade the service staged in its data dir (run by "
        "kitfleet-agent-upgrade.service), switch to it and restart the service, or go back",
    )
    apply.add_argument(
        "--venvs", type=Path, default=Path("/opt/kitfleet-agent"), metavar="ROOT",
        help="the install root holding venvs/ and current (default /opt/kitfleet-agent)",
    )  # fmt: skip
    apply.add_argument(
        "--restart-command", default=None, metavar="COMMAND",
        help="how the agent's service is restarted (default: systemctl restart "
        "kitfleet-agent.service); for hosts run by another service manager",
    )  # fmt: skip
    apply.add_argument("--user", help="the service's user (default: the data dir's owner)")
    apply.add_argument(
        "--health-timeout", type=float, default=120.0, help="seconds to wait for the upgraded agent to answer"
    )
    apply.add_argument("--json", action="store_true", help="print JSON")


def import_command(args: argparse.Namespace) -> int:
    import json

    from agent.bundles.inbox import hand_over, watcher_running
    from agent.bundles.runner import import_here
    from agent.errors import Refusal

    if not args.file.is_file():
        return _fail(f"{args.file}: no such file", "give the path of a .kfb bundle")
    try:
        if watcher_running(args.data_dir):  # the agent runs: it imports through its own services
            result = hand_over(args.data_dir, args.file.resolve())
            if not result.pop("ok"):
                return _fail(str(result.get("message")), result.get("hint"))
        else:
            result = import_here(args.data_dir, args.file)
    except Refusal as exc:
        return _fail(exc.message, exc.hint)
    if args.json:
        print(json.dumps(result))
        return 0
    verb = "finished (resumed)" if result["resumed"] else "imported"
    print(f"{verb} bundle {result['sha256'][:16]} (sequence {result['sequence']})")
    for action in result["applied"]:
        print(f"  {action['type']}: {action.get('target', '')} {action['outcome']}".rstrip())
    return 0


def apply_upgrade_command(args: argparse.Namespace) -> int:
    import json
    import pwd
    import shlex

    from agent.bundles.apply_staged import DEFAULT_RESTART, ApplyFailed, apply_staged

    if os.geteuid() != 0:
        return _fail("apply-upgrade installs into the install root: run it as root")
    try:
        uid = pwd.getpwnam(args.user).pw_uid if args.user else None
    except KeyError:
        return _fail(f"no user {args.user!r}", "give the agent service's user with --user")
    restart = shlex.split(args.restart_command or DEFAULT_RESTART)
    try:
        outcome = apply_staged(args.data_dir, args.venvs, restart, args.health_timeout, uid)
    except ApplyFailed as exc:
        return _fail(str(exc), "pass --venvs with the install root the service runs from")
    said = f"{outcome['outcome']}: {outcome.get('message', '')}".rstrip(": ")
    print(json.dumps(outcome) if args.json else said)
    return 0 if outcome["outcome"] in ("applied", "nothing") else 1


def signers_command(args: argparse.Namespace) -> int:
    import json

    from agent.bundles.signers import TrustedSigners, parse_public_key
    from agent.db import Database
    from agent.errors import Refusal

    db = Database.open(args.data_dir)
    try:
        signers = TrustedSigners(db)
        if args.action == "list":
            return _list(signers.all(), args.json)
        if not args.arg:
            return _fail(
                f"signers {args.action} needs a {'key id' if args.action == 'revoke' else 'key file'}"
            )
        if args.action == "revoke":
            signer = signers.revoke(args.arg)
        else:
            key = parse_public_key(_key_text(Path(args.arg)))
            signer = signers.trust(key, args.label, "cli")
    except Refusal as exc:
        return _fail(exc.message, exc.hint)
    finally:
        db.close()
    print(json.dumps(signer.wire()) if args.json else f"{args.action}: {signer.key_id} ({signer.label})")
    return 0


def _key_text(path: Path) -> str:
    """A key file holds the base64 key alone, or `kitfleet signer show --json` output."""
    import json

    text = path.read_text()[:4096]
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text
    return str(data.get("public_key", "")) if isinstance(data, dict) else text


def _list(signers: list[Any], as_json: bool) -> int:
    import json

    if as_json:
        print(json.dumps([s.wire() for s in signers]))
        return 0
    if not signers:
        print("no trusted signers: adopt or provision the kit from the laptop, or `signers trust FILE`")
    for s in signers:
        state = "revoked" if s.revoked_at is not None else "trusted"
        print(f"{s.key_id}  {state:8}  {s.source:10}  {s.label}")
    return 0


def _fail(message: str, hint: str | None = None) -> int:
    print(f"kitfleet-agent: {message}" + (f"; {hint}" if hint else ""), file=sys.stderr)
    return 1
