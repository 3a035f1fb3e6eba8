"""`tuner tui` (not built yet)."""

from __future__ import annotations

import argparse

from tuner.errors import TunerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise TunerError("'tuner tui' is not built yet")
