"""Shapes shared by the CLI's command modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
CommandFactory = Callable[..., argparse.ArgumentParser]
