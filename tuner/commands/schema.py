"""``tuner schema``: print the profile JSON Schema (draft 2020-12) on stdout, for editors and tools."""

from __future__ import annotations

import argparse
import json
import sys

from tuner.errors import ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: the schema goes to stdout (redirect it to a file)."""


def run(args: argparse.Namespace) -> int:
    """Print the schema, indented by 2."""
    from tuner.profile import profile_json_schema

    sys.stdout.write(json.dumps(profile_json_schema(), indent=2) + "\n")
    return int(ExitCode.OK)
