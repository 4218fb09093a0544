"""The base of every wire model.

Validators are built when a model is first used, not when its module is imported: a command
or a route touches a handful of the contract's models, and building all of them cost
`kitfleet kits` and the agent's start ~0.1 s of CPU (issue 19).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["WireModel"]


class WireModel(BaseModel):
    model_config = ConfigDict(defer_build=True)
