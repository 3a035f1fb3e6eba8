"""``tuner`` / ``tuner tui``: the interactive tuning session.

Nothing heavy is imported at module level: ``tuner hw`` builds this parser too, and must not pay
for Textual.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the TUI."""
    parser.add_argument(
        "--model", default="builtin:mlp", help="model spec to open with (default builtin:mlp)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=150.0,
        metavar="SECONDS",
        help="sweep time budget shown in the setup (default 150)",
    )
    parser.add_argument(
        "--window", type=float, default=1.0, metavar="SECONDS", help="measurement window (default 1.0)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(".tuner/last-sweep.jsonl"),
        metavar="PATH",
        help="JSON-lines file the completed trials are written to (default .tuner/last-sweep.jsonl)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="PATH",
        help="an existing profile to compare the sweep against",
    )
    parser.add_argument(
        "--profiles-dir",
        type=Path,
        default=Path("profiles"),
        metavar="DIR",
        help="where Export suggests writing profiles (default profiles/)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the app; returns its exit code."""
    from tuner.tui.app import TunerApp
    from tuner.tui.driver import BenchDriver

    app = TunerApp(
        model=args.model,
        budget_s=args.budget,
        window_s=args.window,
        driver=BenchDriver(results_path=args.results),
        compare_path=args.profile,
        profiles_dir=args.profiles_dir,
    )
    code = app.run()
    return int(code or 0)
