"""Where the running agent was installed, as an agent upgrade by bundle switches it.

Apart from the upgrade itself so the start-up check of a pending upgrade (upgrade_state.py),
which the upgrade also calls, reads it without an import circle.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.errors import Invalid

__all__ = ["Install", "running_install"]


@dataclass(frozen=True)
class Install:
    """Where this agent was installed: `<root>/venvs/<venv>`, with `<root>/current` pointing at it."""

    root: Path
    venv: Path

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def current(self) -> Path:
        return self.root / "current"


def running_install(prefix: str | None = None) -> Install:
    """This agent's install, from its venv; Invalid when it was not installed that way (a
    developer's checkout, a system package), since then there is no `current` to switch."""
    venv = Path(os.path.realpath(prefix or sys.prefix))
    root = venv.parent.parent
    current = root / "current"
    if venv.parent.name != "venvs" or os.path.realpath(current) != str(venv):
        raise Invalid(
            "agent_not_upgradable",
            f"this agent runs from {venv}, not from a kitfleet install (<root>/venvs/<venv> with "
            "<root>/current pointing at it), so a bundle cannot upgrade it",
            "provision the kit (kitfleet provision) or install it from the stick, then send the upgrade",
        )
    return Install(root, venv)
