"""`kitfleet datasets` and `kitfleet unsure`: label pictures into a field dataset on a kit, count
its classes, and label what a model was unsure about (kept by stream and batch-infer jobs given
`keep_unsure`). `kitfleet jobs submit K --kind fine-tune --dataset D` then trains on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from app.cli.common import emit, open_fleet
from app.cli.types import CommandFactory, Handler

# The fleet is imported when a command runs (a light parser).


def add_commands(command: CommandFactory) -> None:
    datasets = command("datasets", "field datasets on a kit: label pictures into classes, count them", False)
    actions = datasets.add_subparsers(dest="action", metavar="ACTION", required=True)
    label = _action(actions, "label", "add pictures to DATASET on the kit under LABEL (made if new)")
    label.add_argument("kit", help="kit name or device ID")
    label.add_argument("dataset", help="field dataset name (lower-case letters, digits, - and _)")
    label.add_argument("label", help="the class the pictures show")
    label.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG, PNG, BMP or WebP files")
    classes = _action(actions, "classes", "images per class in a dataset on the kit")
    classes.add_argument("kit", help="kit name or device ID")
    classes.add_argument("dataset", help="dataset name")

    unsure = command("unsure", "inputs a model was unsure about, kept on a kit for labelling", False)
    moves = unsure.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _action(moves, "list", "kept inputs, newest first, with what the model answered")
    listing.add_argument("kit", help="kit name or device ID")
    listing.add_argument("--model", help="only this model's")
    labelling = _action(moves, "label", "move a kept input into a field dataset under a label")
    labelling.add_argument("kit", help="kit name or device ID")
    labelling.add_argument("item_id", metavar="ID", help="as `kitfleet unsure list` shows it")
    labelling.add_argument("--dataset", required=True, help="field dataset name")
    labelling.add_argument("--label", required=True, help="the class the input shows")


def _action(actions: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


async def _datasets(args: argparse.Namespace) -> int:
    from app.fleet.field_datasets import async_classes, async_label_files

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        if args.action == "label":
            answers = await async_label_files(fleet, kit, args.dataset, args.label, list(args.images))
            lines = [
                f"{path}: {'added as' if a.added else 'already there as'} {a.dataset}/{a.file}"
                for path, a in zip(args.images, answers, strict=True)
            ]
            if answers:
                lines.append(f"{args.label}: {answers[-1].images} image(s) in {args.dataset} on {kit.name}")
            emit(args, [a.model_dump() for a in answers], lines)
            return 0
        classes = await async_classes(fleet, kit, args.dataset)
    finally:
        fleet.close()
    width = max((len(c.label) for c in classes.classes), default=5)
    rows = [f"{'LABEL':<{width}}  IMAGES"] + [f"{c.label:<{width}}  {c.images}" for c in classes.classes]
    emit(
        args, classes.model_dump(), [*rows, f"{classes.images} image(s) in {len(classes.classes)} class(es)"]
    )
    return 0


async def _unsure(args: argparse.Namespace) -> int:
    from app.fleet.receipts.unsure import PendingLabel
    from app.fleet.unsure_received import async_label_anywhere, async_unsure_view

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        if args.action == "label":
            moved = await async_label_anywhere(fleet, kit, args.item_id, args.dataset, args.label)
            if isinstance(moved, PendingLabel):
                said = (
                    f"{kit.name} is away: labelled {moved.dataset}/{moved.label} on this laptop, "
                    "sent to the kit the next time `kitfleet unsure list|label` reaches it"
                )
                emit(args, {"queued": True, "dataset": moved.dataset, "label": moved.label}, [said])
                return 0
            emit(
                args,
                moved.model_dump(),
                [f"moved into {moved.dataset}/{moved.file} ({moved.images} in {moved.label})"],
            )
            return 0
        view = await async_unsure_view(fleet, kit, args.model)
    finally:
        fleet.close()
    lines = [f"sent a label queued while away: {s.dataset}/{s.file}" for s in view.sent]
    lines.append("ID                        MODEL@VERSION  TOP    MARGIN  ANSWER  KEPT  SOURCE")
    shown = [(item, "") for item in view.items]
    shown += [(r.item, _from_receipt(r)) for r in view.received]
    for item, origin in shown:
        best = item.classes[0].label if item.classes else ""
        margin = "" if item.margin is None else f"{item.margin:.3f}"
        kept = time.strftime("%m-%d %H:%M", time.localtime(item.kept_at))
        model = f"{item.model}@{item.version}"
        lines.append(
            f"{item.id}  {model}  {item.top:.3f}  {margin:<6}  {best}  {kept}  {item.source}{origin}"
        )
    if view.away:
        lines.insert(0, f"{view.away}; showing what its receipts brought back")
    if not shown:
        lines = (
            [*lines[:1], f"nothing received from {kit.name}"]
            if view.away
            else [f"nothing kept on {kit.name}: submit batch-infer or stream jobs with keep_unsure"]
        )
    data = [i.model_dump() for i in view.items] + [
        {**r.item.model_dump(), "from_receipt": True, "image": str(r.image), "queued_label": _queued(r)}
        for r in view.received
    ]
    emit(args, data, lines)
    return 0


def _from_receipt(received: Any) -> str:
    queued = received.queued
    return "  (from a receipt" + (f"; labelled {queued.dataset}/{queued.label}, queued)" if queued else ")")


def _queued(received: Any) -> dict[str, str] | None:
    queued = received.queued
    return {"dataset": queued.dataset, "label": queued.label} if queued else None


HANDLERS: dict[str, Handler] = {"datasets": _datasets, "unsure": _unsure}
