"""`kitfleet bundle create`: signed bundles for kits the laptop cannot reach (issue 22); and
`kitfleet signer show|rotate`, the app's bundle-signing key."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_tag_option, emit, open_fleet, select_kits
from app.cli.receipts import add_receive, receive_command
from app.cli.types import CommandFactory, Handler

# The fleet, the key and the bundle writer are imported when a command runs (a light parser).
BundleActions: dict[str, Handler] = {}


def add_commands(command: CommandFactory) -> None:
    cmd = command("bundle", "signed bundles that carry work to kits the laptop cannot reach", False)
    actions = cmd.add_subparsers(dest="bundle_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="write a signed bundle (FILE.kfb) for some kits")
    create.add_argument("--out", type=Path, required=True, metavar="FILE.kfb", help="the bundle to write")
    create.add_argument("--kit", dest="kits", action="append", default=[], help="target kit (repeatable)")
    add_tag_option(create)
    create.add_argument("--model", dest="models", action="append", default=[], type=Path, metavar="M.onnx")
    create.add_argument("--no-activate", action="store_true", help="install models without serving them")
    create.add_argument(
        "--rollback-to", nargs=2, metavar=("NAME", "VERSION"), help="serve this version again"
    )
    create.add_argument("--dataset", dest="datasets", action="append", default=[], type=Path, metavar="DIR")
    create.add_argument("--job", dest="jobs", action="append", default=[], type=Path, metavar="SPEC.json")
    create.add_argument(
        "--schedule", dest="schedules", action="append", default=[], type=Path, metavar="SPEC.json"
    )
    create.add_argument(
        "--agent-upgrade",
        type=Path,
        metavar="WHEELHOUSE",
        help="a new kitfleet-agent from this wheelhouse (the folder `kitfleet provision --wheelhouse` "
        "installs from, e.g. on the install stick); kept only if healthy",
    )
    create.add_argument("--expires", default="14d", help="e.g. 14d, 12h, or never (default 14d)")
    create.add_argument("--json", action="store_true", help="print JSON")
    add_receive(actions)
    signer = command("signer", "the app's bundle-signing key: `signer show`, `signer rotate`")
    signer.add_argument("action", choices=("show", "rotate"))


async def _bundle(args: argparse.Namespace) -> int:
    return await BundleActions[args.bundle_action](args)


async def _create(args: argparse.Namespace) -> int:
    from app.fleet.bundles.create import BundlePlan, create_bundle, parse_expiry

    fleet = open_fleet(args)
    try:
        plan = BundlePlan(
            kits=select_kits(fleet, args.kits, args.tags),
            models=args.models,
            rollback=tuple(args.rollback_to) if args.rollback_to else None,
            datasets=args.datasets,
            jobs=args.jobs,
            schedules=args.schedules,
            agent_upgrade=args.agent_upgrade,
            expires_s=parse_expiry(args.expires),
            activate=not args.no_activate,
        )
        made = create_bundle(fleet.settings.home, fleet.inventory, fleet.audit, plan, args.out)
    finally:
        fleet.close()
    names = [k.name for k in plan.kits]
    data = {
        "file": str(made.path),
        "sha256": made.sha256,
        "sequence": made.sequence,
        "signer": made.signer,
        "actions": made.actions,
        "kits": names,
    }
    lines = [
        f"wrote {made.path} ({made.actions} actions, sequence {made.sequence}, signed by {made.signer})",
        f"for {', '.join(names)}; on each kit: kitfleet-agent import {made.path.name}",
    ]
    emit(args, data, lines)
    return 0


async def _signer(args: argparse.Namespace) -> int:
    from app.fleet.signing import load_or_create

    fleet = open_fleet(args)
    try:
        if args.action == "show":
            key = load_or_create(fleet.settings.home).current
            data = {"key_id": key.key_id, "public_key": key.public_b64, "created_at": key.created_at}
            emit(args, data, [f"key id {key.key_id}", f"public key {key.public_b64}"])
            return 0
        from app.fleet.bundles.rotation import async_rotate

        rotation = await async_rotate(fleet)
    finally:
        fleet.close()
    data2 = {"key_id": rotation.new.key_id, "reached": rotation.reached, "missed": rotation.missed}
    lines = [f"new signing key {rotation.new.key_id}; given to {len(rotation.reached)} kit(s)"]
    lines += [
        f"  not reached: {name}: {why} (it keeps trusting the old key)"
        for name, why in rotation.missed.items()
    ]
    emit(args, data2, lines)
    return 1 if rotation.missed else 0


BundleActions["create"] = _create
BundleActions["receive"] = receive_command
HANDLERS: dict[str, Handler] = {"bundle": _bundle, "signer": _signer}
