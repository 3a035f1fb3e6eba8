"""The ``tuner`` command: the TUI with no arguments, or one of the subcommands.

Each subcommand lives in ``tuner/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so ``tuner hw`` never pays for Textual.
Errors a user can cause end as one line on stderr and exit code 2 (see :mod:`tuner.errors`).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from tuner import __version__
from tuner.errors import BadInput, ExitCode, TunerError, exit_code_for

COMMANDS: dict[str, str] = {
    "tui": "open the interactive tuning session (the default)",
    "hw": "show the hardware as tuner sees it",
    "bench": "sweep configurations headless, recommend one, write a profile",
    "run": "apply a profile to a data file",
    "serve": "serve a profile's model over HTTP (needs the serve extra)",
    "check": "validate a profile",
    "verify": "offer a running server its profile's rates and say whether the profile holds",
    "watch": "watch a running tuner serve live against its profile (the TUI's Live view)",
    "plan": "workers and hosts for a target request rate, from a profile measured with --online",
    "schema": "print the profile JSON Schema",
    "export": "write a profile as another system's config (Ray Serve)",
    "report": "one self-contained HTML page of a sweep, or two runs compared",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are a BadInput: one ``tuner: ...`` line and exit 2, like any other."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "tuner bench" -> "bench"; "" for the top level
        where = f"{command}: " if command else ""
        raise BadInput(f"{where}{message} (try '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuner", description="Measure how to deploy a model on this machine.")
    parser.add_argument("--version", action="version", version=f"tuner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(f"tuner.commands.{name}")
        module.add_arguments(p)
    return parser


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same clean path as Ctrl-C: engines close, workers are stopped.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]
    parser = build_parser()
    try:
        # Option values are checked while parsing (tuner.options): a bad one is a BadInput
        # here, before the command loads, starts or writes anything.
        args, extra = parser.parse_known_args(argv)
        if extra:  # said here, not by argparse, so the hint names the subcommand's own --help
            command = f"tuner {args.command}" if args.command else "tuner"
            raise BadInput(f"unrecognized arguments: {' '.join(extra)} (try '{command} --help')")
    except TunerError as e:
        sys.stderr.write(f"tuner: {e}\n")
        return exit_code_for(e)
    if args.command is None:
        parser.print_help()
        return int(ExitCode.BAD_INPUT)
    previous: Any = None
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread (embedded use)
        pass
    module = importlib.import_module(f"tuner.commands.{args.command}")
    try:
        return int(module.run(args))
    except TunerError as e:
        sys.stderr.write(f"tuner: {e}\n")
        return exit_code_for(e)
    except KeyboardInterrupt:
        sys.stderr.write("tuner: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    finally:
        if previous is not None:  # called in-process (tests, embedding): put the caller's handler back
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
