"""`kitfleet-agent`: run the daemon and the few commands a technician types on a kit."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

# Everything else is imported where a command needs it, not here: `kitfleet-agent --help`
# then starts without json, sqlite3, logging, the version's importlib.metadata, and the web
# stack and ONNX Runtime, which only `run` needs.

DEFAULT_DATA_DIR = Path("/var/lib/kitfleet-agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitfleet-agent", description=__doc__)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help=f"the agent's data dir (default {DEFAULT_DATA_DIR})",
        )
        return cmd

    run = command("run", "serve the API and announce the kit until stopped")
    run.add_argument("--host", help="listen address (default 0.0.0.0)")
    run.add_argument("--port", type=int, help="TCP port; 0 picks a free one (default 8443)")
    run.add_argument("--name", help="display name (default: the host name)")
    run.add_argument("--kit-model", help="kit model shown to technicians (default: from DMI)")
    run.add_argument(
        "--mdns-interface",
        dest="mdns_interfaces",
        action="append",
        metavar="IP",
        help="announce only on this address (repeatable); default: every interface",
    )
    run.add_argument(
        "--no-mdns", dest="mdns", action="store_const", const=False, help="do not announce over mDNS"
    )

    code = command("pair-code", "show a one-time pairing code for adopting this kit")
    code.add_argument("--ttl", type=float, default=600.0, help="seconds the code stays valid")
    code.add_argument("--json", action="store_true", help="print JSON")

    ident = command("identity", "print the kit's device ID")
    ident.add_argument(
        "--regenerate",
        action="store_true",
        help="make a new key and certificate: every app must adopt the kit again",
    )
    ident.add_argument("--json", action="store_true", help="print JSON")

    enroll = command(
        "enroll",
        "issue a token for an app that reached this kit over SSH; prints "
        "JSON with the device ID, token and certificate",
    )
    enroll.add_argument(
        "--scope",
        choices=("viewer", "operator", "admin"),
        default="admin",
        help="what the token may do (default admin)",
    )
    enroll.add_argument(
        "--app-id", default="ssh", help="the app's ID: its earlier SSH-enrolled token is revoked"
    )
    enroll.add_argument(
        "--signer-key", metavar="BASE64", help="the app's bundle-signing key, trusted from now on"
    )

    export = command(
        "export",
        "write what ran since the last export (imports, jobs, logs, results, metrics, audit) "
        "as a receipt signed by this kit, for `kitfleet bundle receive` on the laptop",
    )
    export.add_argument("--out", type=Path, required=True, help="the folder to write DEVICE-SEQ.kfr into")
    export.add_argument(
        "--since", type=int, metavar="LAST", help="start after receipt LAST (0: everything the kit holds)"
    )
    export.add_argument(
        "--no-unsure",
        action="store_true",
        help="leave out the inputs models were unsure about (they go in the next receipt without it)",
    )
    export.add_argument(
        "--unsure-bytes",
        type=int,
        default=32 << 20,
        metavar="BYTES",
        help="bytes of unsure inputs' images a receipt carries (default 32 MiB); the rest wait for the next",
    )
    export.add_argument("--json", action="store_true", help="print JSON")

    facts = command("facts", "print the hardware facts the agent reports")
    facts.add_argument("--json", action="store_true", help="print JSON")

    from agent.bundles.cli import add_commands  # argparse only: nothing heavy on --help

    add_commands(command)
    return parser


def _private(data_dir: Path) -> None:
    from agent.storage import private_data_dir

    private_data_dir(data_dir)


class _Version(argparse.Action):
    """As argparse's "version" action, with the version read only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from agent import __version__

        print(f"kitfleet-agent {__version__}")  # on stdout, as argparse's own
        parser.exit()


def _setup_logging(data_dir: Path) -> None:
    import logging
    import logging.handlers

    from agent.toolkit.logs import PrintableFormatter

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers.append(
        logging.handlers.RotatingFileHandler(data_dir / "agent.log", maxBytes=1 << 20, backupCount=3)
    )
    for handler in handlers:
        handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=handlers)


def _run(args: argparse.Namespace) -> int:
    from agent.config import Settings
    from agent.server import run

    flags = {k: getattr(args, k) for k in ("host", "port", "name", "kit_model", "mdns_interfaces", "mdns")}
    settings = Settings.resolve(args.data_dir, flags)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # modes repaired in run()
    _setup_logging(settings.data_dir)
    run(settings)
    return 0


def _pair_code(args: argparse.Namespace) -> int:
    import json

    from agent.auth.pairing import new_code
    from agent.db import Database
    from agent.identity import load_or_create

    _private(args.data_dir)
    identity = load_or_create(args.data_dir)
    db = Database.open(args.data_dir)
    try:
        code = new_code(db, identity.device_id, args.ttl)
    finally:
        db.close()
    if args.json:
        print(
            json.dumps({"code": code.display, "expires_at": code.expires_at, "device_id": identity.device_id})
        )
    else:
        minutes = max(1, round((code.expires_at - time.time()) / 60))
        print(f"Pairing code: {code.display}")
        print(f"Device ID:    {identity.display_id}")
        print(f"Valid for {minutes} min, once. On the laptop: kitfleet adopt <kit> --code {code.display}")
    return 0


def _identity(args: argparse.Namespace) -> int:
    import json

    from agent.identity import load_or_create, regenerate

    _private(args.data_dir)
    identity = regenerate(args.data_dir) if args.regenerate else load_or_create(args.data_dir)
    if args.json:
        print(
            json.dumps(
                {
                    "device_id": identity.device_id,
                    "display": identity.display_id,
                    "certificate": str(identity.cert_path),
                }
            )
        )
    else:
        print(identity.device_id)
    return 0


def _enroll(args: argparse.Namespace) -> int:
    """The SSH login is the proof of trust here, so no pairing code: whoever may run this
    command on the kit may read the data dir anyway."""
    import json

    from agent.auth.tokens import TokenStore
    from agent.config import Settings
    from agent.db import Database
    from agent.identity import load_or_create
    from agent.server import PORT_FILE

    _private(args.data_dir)
    identity = load_or_create(args.data_dir)
    settings = Settings.resolve(args.data_dir, {})
    label = f"kitfleet ({args.app_id}) via ssh"
    db = Database.open(args.data_dir)
    try:
        tokens = TokenStore(db)
        for old in tokens.list():
            if old.label == label and not old.revoked:
                tokens.revoke(old.token_id)
        token_id, token = tokens.issue(label, args.scope)
        from agent.audit import Actor, AuditLog  # adoption over SSH is audited like pairing

        AuditLog(db).append(
            Actor(token_id, label), "kit.adopt", token_id, "ok", {"via": "ssh", "scope": args.scope}
        )
        signer_key_id = _trust_signer(db, args.signer_key, label, Actor(token_id, label))
    finally:
        db.close()
    port_file = args.data_dir / PORT_FILE
    port = int(port_file.read_text()) if port_file.exists() else settings.port
    print(
        json.dumps(
            {
                "device_id": identity.device_id,
                "token": token,
                "token_id": token_id,
                "scope": args.scope,
                "name": settings.name,
                "port": port,
                "cert_pem": identity.cert_path.read_text(),
                "signer_key_id": signer_key_id,
            }
        )
    )
    return 0


def _trust_signer(db: Any, key: str | None, label: str, actor: Any) -> str | None:
    """Trust the enrolling app's bundle-signing key (the SSH login vouches for it too)."""
    if not key:
        return None
    from agent.bundles.signers import TrustedSigners, parse_public_key

    return TrustedSigners(db).trust(parse_public_key(key), label, "provision", actor).key_id


def _export(args: argparse.Namespace) -> int:
    import json

    from agent.errors import Refusal
    from agent.receipts import export
    from agent.receipts.collect import ExportLimits

    unsure_bytes = 0 if args.no_unsure else max(args.unsure_bytes, 1)
    try:
        done = export(args.data_dir, args.out, args.since, ExportLimits(unsure_bytes=unsure_bytes))
    except Refusal as exc:
        print(f"kitfleet-agent: {exc.message}" + (f"; {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    summary = {"file": str(done.path), "sha256": done.sha256, **done.receipt.summary()}
    if args.json:
        print(json.dumps(summary | {"notes": done.receipt.notes}))
    else:
        print(
            f"wrote {done.path} (receipt {done.receipt.seq}: {len(done.receipt.jobs)} jobs, "
            f"{len(done.receipt.metrics)} samples, {len(done.receipt.audit)} audit entries, "
            f"{len(done.receipt.imports)} imports, {len(done.receipt.unsure)} unsure inputs)"
        )
        for note in done.receipt.notes:
            print(f"  note: {note}")
    return 0


def _facts(args: argparse.Namespace) -> int:
    import json

    from agent.facts import collect_all

    facts = collect_all(args.data_dir if args.data_dir.exists() else None).wire()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    for family, values in facts.items():
        print(f"[{family}]")
        for key, value in values.items():
            print(f"  {key}: {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from agent.bundles.cli import import_command

    _private(args.data_dir)
    return import_command(args)


def _apply_upgrade(args: argparse.Namespace) -> int:
    from agent.bundles.cli import apply_upgrade_command

    return apply_upgrade_command(args)


def _signers(args: argparse.Namespace) -> int:
    from agent.bundles.cli import signers_command

    _private(args.data_dir)
    return signers_command(args)


_COMMANDS = {
    "run": _run,
    "pair-code": _pair_code,
    "identity": _identity,
    "enroll": _enroll,
    "export": _export,
    "facts": _facts,
    "import": _import,
    "signers": _signers,
    "apply-upgrade": _apply_upgrade,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # makes no file: --help and --version end here
    # the agent uses no pydantic plugins: looking for them reads every installed distribution's
    # entry points (~9 ms of the agent's and each job worker's start); the environment wins
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from agent.storage import PRIVATE_UMASK

    # Before any file is made: the database holds the pairing key and token hashes, so
    # nothing the agent writes may be readable by another local user.
    os.umask(PRIVATE_UMASK)
    try:
        return _COMMANDS[args.command](args)
    except PermissionError as exc:
        print(
            f"kitfleet-agent: {exc.filename}: permission denied; run as the agent's user or pass --data-dir",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        import sqlite3  # loaded already by any command that could have raised it

        from agent.db import is_corruption

        if not isinstance(exc, sqlite3.DatabaseError) or not is_corruption(exc):
            raise
        print(
            f"kitfleet-agent: the agent database is damaged ({exc}); start the agent "
            "(kitfleet-agent run): it keeps the damaged file aside and begins a fresh one",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
