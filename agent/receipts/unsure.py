"""The inputs a model was unsure about (`agent/jobs/unsure.py`) that leave the kit in a receipt.

Items kept after the last export's cursor go in, oldest first, while their images fit the
receipt's byte budget for them (`ExportLimits.unsure_bytes`); the first one that does not fit
and every item after it wait for the next receipt (the cursor stops before it, the receipt's
notes say how many wait). One image alone over the whole budget would hold back every receipt:
it stays on the kit (still listed there) and the notes name it. Items kept in the last
`SETTLE_S` seconds also wait while a job runs: one still writing could land behind the cursor.
Nothing is removed from the kit: its buffer rotates as it always does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.jobs.unsure import SUFFIXES, kept_after
from agent.wire.receipts import ReceiptUnsure

__all__ = ["SETTLE_S", "UnsureOut", "collect_unsure"]

SETTLE_S = 10.0


@dataclass
class UnsureOut:
    items: list[ReceiptUnsure] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # member name -> the image's bytes
    after: str = ""
    notes: list[str] = field(default_factory=list)


def collect_unsure(data_dir: Path, after: str, budget: int, count: int, settle: bool) -> UnsureOut:
    """What goes in this receipt within `budget` bytes and `count` items, and the cursor after it."""
    out = UnsureOut(after=after)
    settled = f"{int((time.time() - (SETTLE_S if settle else -SETTLE_S)) * 1e6):013x}"
    waiting = [(item, path) for item, path in kept_after(data_dir, after) if item.id[:13] <= settled]
    left = budget
    for n, (item, path) in enumerate(waiting):
        data = _read(path, item.size)
        if data is None:  # rotated out meanwhile, or not the size its prediction says: not carried
            out.after = item.id
            continue
        if len(data) > budget:  # never fits a receipt: it stays on the kit, said so
            out.notes.append(
                f"unsure: {item.id} ({len(data)} bytes) is over the {budget} bytes a receipt carries "
                "of kept inputs; it stays on the kit"
            )
            out.after = item.id
            continue
        if len(out.items) >= count or len(data) > left:
            out.notes.append(
                f"unsure: {len(waiting) - n} more kept input(s) wait for the next receipt "
                f"(a receipt carries {count} of them, {budget} bytes)"
            )
            return out
        carried = ReceiptUnsure(item=item, kind=SUFFIXES[path.suffix])
        out.items.append(carried)
        out.images[carried.member] = data
        out.after = item.id
        left -= len(data)
    return out


def _read(path: Path, size: int) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(size + 1)
    except OSError:
        return None
    return data if len(data) == size else None
