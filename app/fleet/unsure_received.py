"""The unsure inputs of a kit whether it answers or not: its own buffer when it does, the copies
its receipts brought (`app/fleet/receipts/unsure.py`) when it is away.

Labelling a received item while the kit is away queues the label on the laptop; the queue is
sent the next time the app reaches the kit for its unsure inputs (`kitfleet unsure list|label`,
the Field data tab): the kit moves the item out of its own buffer into the dataset when it
still holds it, else the laptop's copy is sent as a labelled image. A copy is dropped only
after the kit has taken it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.wire.field_datasets import LabelledImage, UnsureItem
from app.fleet.errors import AgentError, KitUnreachable
from app.fleet.field_datasets import (
    async_label_bytes,
    async_label_unsure,
    async_unsure,
    check_dataset,
    check_label,
)
from app.fleet.inventory import Kit
from app.fleet.receipts.unsure import PendingLabel, ReceivedUnsure, UnsureCopies
from app.fleet.service import Fleet

__all__ = ["UnsureView", "async_label_anywhere", "async_send_queued", "async_unsure_view"]


@dataclass
class UnsureView:
    """What `kitfleet unsure list` shows: the kit's items, or (away) the received copies."""

    items: list[UnsureItem] = field(default_factory=list)
    received: list[ReceivedUnsure] = field(default_factory=list)
    away: str | None = None  # why the kit was not asked
    sent: list[LabelledImage] = field(default_factory=list)  # queued labels the kit took now


async def async_unsure_view(fleet: Fleet, kit: Kit, model: str | None = None) -> UnsureView:
    copies = UnsureCopies(fleet.settings.home)
    try:
        sent = await async_send_queued(fleet, kit, copies)
        return UnsureView(items=await async_unsure(fleet, kit, model), sent=sent)
    except KitUnreachable as exc:
        return UnsureView(received=copies.held(kit.device_id, model), away=str(exc))


async def async_send_queued(fleet: Fleet, kit: Kit, copies: UnsureCopies) -> list[LabelledImage]:
    """Send the labels given to received items while the kit was away (raises KitUnreachable)."""
    sent = []
    for held in copies.pending(kit.device_id):
        assert held.queued is not None
        sent.append(await _send(fleet, kit, held, held.queued))
        copies.forget(kit.device_id, held.item.id)
    return sent


async def async_label_anywhere(
    fleet: Fleet, kit: Kit, item_id: str, dataset: str, label: str
) -> LabelledImage | PendingLabel:
    """Label an item on the kit; when the kit is away and a receipt brought the item, queue it."""
    check_dataset(dataset)
    check_label(label)
    copies = UnsureCopies(fleet.settings.home)
    held = copies.get(kit.device_id, item_id)
    try:
        await async_send_queued(fleet, kit, copies)
        if held is None:
            return await async_label_unsure(fleet, kit, item_id, dataset, label)
        done = await _send(fleet, kit, held, PendingLabel(item_id, dataset, label))
    except KitUnreachable:
        if held is None:
            raise
        return copies.queue_label(kit.device_id, item_id, dataset, label)
    copies.forget(kit.device_id, item_id)
    return done


async def _send(fleet: Fleet, kit: Kit, held: ReceivedUnsure, pending: PendingLabel) -> LabelledImage:
    """Move the kit's own item into the dataset, or (rotated out there) send the laptop's copy."""
    try:
        return await async_label_unsure(fleet, kit, held.item.id, pending.dataset, pending.label)
    except AgentError as exc:
        if exc.error != "unsure_not_found":
            raise
    kind = held.image.suffix.lstrip(".")
    data = held.image.read_bytes()
    return await async_label_bytes(fleet, kit, pending.dataset, pending.label, data, kind)
