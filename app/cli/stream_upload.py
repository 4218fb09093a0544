"""`stream start` with a source on this computer: sent to the kit as a dataset, then streamed.

The kit judges the source first, so a path that is on the kit (the demo, a shared folder)
never goes over the link; only when the kit has no such source and this computer has one is
sending it offered: with `--upload`, or a question on a terminal.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from agent.wire import JobInfo
from app.cli.common import say
from app.fleet.datasets import LocalDataset
from app.fleet.errors import AgentError, Error
from app.fleet.inventory import Kit
from app.fleet.service import Fleet
from app.fleet.stream import StreamOptions, async_start, async_upload_source, local_source
from app.fleet.summary import size

__all__ = ["async_start_or_upload", "interactive"]

# what a kit says of a path it has not got, which this computer may have
_NOT_ON_THE_KIT = frozenset({"path_outside_data_roots", "source_not_found"})


def interactive() -> bool:
    """Whether a question can be asked: a person at a terminal (stdout may still be JSON for a
    program; the question goes to stderr)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


async def async_start_or_upload(
    fleet: Fleet, kit: Kit, options: StreamOptions, upload: bool, ask: bool
) -> JobInfo:
    """The stream job on the kit's own source, else on this computer's, sent to it first."""
    try:
        return await async_start(fleet, kit, options)
    except AgentError as exc:
        local = Path(options.source).expanduser()
        if exc.error not in _NOT_ON_THE_KIT or not local.exists():
            raise
        refusal = exc
    dataset = local_source(local)
    if not upload and not (ask and _agrees(kit, local, dataset)):
        raise Error(
            f"{options.source!r} is not on {kit.name} ({refusal.message}), but it is on this "
            f"computer: add --upload to send it to the kit ({size(dataset.size)}) and stream it "
            "from there"
        )
    name = await async_upload_source(fleet, kit, dataset, _Progress(kit.name, dataset))
    inside = local.name if local.is_file() else "."
    return await async_start(fleet, kit, dataclasses.replace(options, source=inside, dataset=name))


def _agrees(kit: Kit, local: Path, dataset: LocalDataset) -> bool:
    what = "video" if local.is_file() else f"folder of {dataset.files} images"
    sys.stderr.write(
        f"{local} is on this computer, not on {kit.name}. Send the {what} ({size(dataset.size)}) "
        f"to {kit.name} as dataset {dataset.name} and stream it from there? [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


class _Progress:
    """Upload progress on stderr (stdout stays the outcome): in place on a terminal, else a
    line per tenth."""

    def __init__(self, kit: str, dataset: LocalDataset) -> None:
        self.kit, self.total = kit, max(dataset.size, 1)
        self.name, self.live = dataset.name, sys.stderr.isatty()
        self._shown = -1

    def __call__(self, sent: int) -> None:
        pct = min(100, 100 * sent // self.total)
        step = pct if self.live else pct // 10 * 10
        if step == self._shown:
            return
        self._shown = step
        text = f"{self.kit}: uploading {self.name} {pct}% of {size(self.total)}"
        if self.live:
            sys.stderr.write(f"\r{text}" + ("\n" if pct == 100 else ""))
            sys.stderr.flush()
        else:
            say(text, file=sys.stderr)
