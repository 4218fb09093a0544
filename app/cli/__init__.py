"""`kitfleet`: the desktop window with no arguments, or the same powers from the shell."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# Every module imported here only declares its commands: what a command does (the fleet,
# pydantic, httpx, SQLite, ONNX, SSH) is imported when it runs, so `kitfleet --help` and each
# command start without the others' libraries (tests/unit/app/test_cli_start.py).
from app.cli import (
    bundles,
    field,
    jobs,
    kits,
    models,
    preflight,
    provision,
    quantize,
    report,
    rollout,
    stream,
)
from app.cli.common import settings
from app.fleet.errors import Error

HANDLERS = {
    **kits.HANDLERS,
    **models.HANDLERS,
    **quantize.HANDLERS,
    **jobs.HANDLERS,
    **provision.HANDLERS,
    **stream.HANDLERS,
    **report.HANDLERS,
    **preflight.HANDLERS,
    **rollout.HANDLERS,
    **field.HANDLERS,
    **bundles.HANDLERS,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitfleet", description=__doc__)
    parser.add_argument("--version", action=_Version, nargs=0, help="show program's version number and exit")
    parser.add_argument(
        "--home", type=Path, help="the app's data dir (default $KITFLEET_HOME or the user data dir)"
    )
    parser.add_argument(
        "--interface",
        dest="interfaces",
        action="append",
        metavar="IP",
        help="browse mDNS only on this address (repeatable; default: all)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            cmd.add_argument("--json", action="store_true", help="print JSON")
        return cmd

    kits.add_commands(command)
    models.add_commands(command)
    quantize.add_commands(command)
    jobs.add_commands(command)
    provision.add_commands(command)
    stream.add_commands(command)
    report.add_commands(command)
    preflight.add_commands(command)
    rollout.add_commands(command)
    field.add_commands(command)
    bundles.add_commands(command)
    demo = command("demo", "start demo agents on loopback and use them end to end", False)
    demo.add_argument("--screenshot", type=Path, help="where to save the window screenshot")
    demo.add_argument(
        "--offscreen", action="store_true", help="never show a window (default when there is no display)"
    )
    return parser


class _Version(argparse.Action):
    """`--version`, read when asked for: the installed package's metadata costs every other
    command ~60 ms."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from app import __version__

        print(f"kitfleet {__version__}")
        parser.exit()


def _setup_logging() -> None:
    """Warnings and bugs to stderr, each message escaped: an exception may quote a kit."""
    import logging

    from agent.toolkit.logs import PrintableFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("kitfleet %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that left (`| head`) shows here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()


def _run(argv: list[str] | None) -> int:
    # kitfleet uses no pydantic plugins: looking for them reads every installed distribution's
    # entry points (~9 ms of each command); PYDANTIC_DISABLE_PLUGINS= in the environment wins
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = _parser().parse_args(argv)
    _setup_logging()
    if args.command is None:
        from app.gui.main import run_gui

        return run_gui(settings(args))
    if args.command == "demo":
        from app.demo import run_demo

        return run_demo(screenshot=args.screenshot, offscreen=args.offscreen)
    import asyncio

    try:
        return asyncio.run(HANDLERS[args.command](args))
    except Error as exc:
        from app.fleet.text import printable_lines

        print(f"kitfleet: {printable_lines(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_gone() -> int:
    """The reader of stdout closed it (`kitfleet jobs list | head`): stop quietly, as a shell
    tool does. Python would still flush stdout at exit and print a traceback about it, so
    stdout becomes /dev/null first (the recipe in Python's `signal` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a command its pipe reader left
