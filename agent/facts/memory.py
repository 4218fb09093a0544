"""Memory facts: how much RAM the kit has, how much is free for a model, and swap."""

from __future__ import annotations

import psutil

from agent.wire import MemoryFacts


def collect() -> MemoryFacts:
    """Return total and available RAM and total swap, in bytes."""
    ram = psutil.virtual_memory()
    return MemoryFacts(
        available=True,
        total_bytes=ram.total,
        available_bytes=ram.available,
        swap_total_bytes=psutil.swap_memory().total,
    )
