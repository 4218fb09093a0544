"""`--prefer speed|energy`: what a precision choice weighs within the accuracy tolerance."""

from __future__ import annotations

import argparse

from app.fleet.precision_energy import PREFERENCES

__all__ = ["add_prefer_flag"]


def add_prefer_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--prefer",
        choices=PREFERENCES,
        default="speed",
        help="with --choose-precision, within the accuracy tolerance: the fastest variant (speed, the "
        "default) or the one using the fewest joules per 1,000 inferences on the kit (energy; the "
        "reason says whether the figures were measured or estimated)",
    )
