"""``tuner`` / ``tuner tui``: the interactive tuning session.

Nothing heavy is imported at module level: ``tuner hw`` builds this parser too, and must not pay
for Textual.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuner.options import MIN_WINDOW_S, finite, non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the TUI; each value is checked as it is parsed (tuner.options)."""
    parser.add_argument(
        "--model",
        type=typed(non_blank, "--model", what="a model spec", default="builtin:mlp"),
        default="builtin:mlp",
        help="model spec to open with (default builtin:mlp)",
    )
    parser.add_argument(
        "--budget",
        type=typed(finite, "--budget", gt=0, what="seconds"),
        default=150.0,
        metavar="SECONDS",
        help="sweep time budget shown in the setup (seconds > 0; default 150)",
    )
    parser.add_argument(
        "--window",
        type=typed(finite, "--window", ge=MIN_WINDOW_S, what="seconds"),
        default=1.0,
        metavar="SECONDS",
        help=f"measurement window (seconds >= {MIN_WINDOW_S:g}; default 1.0)",
    )
    parser.add_argument(
        "--results",
        type=typed(_path, "--results", what="a .jsonl file"),
        default=Path(".tuner/last-sweep.jsonl"),
        metavar="PATH",
        help="JSON-lines file the completed trials are written to (default .tuner/last-sweep.jsonl)",
    )
    parser.add_argument(
        "--profile",
        type=typed(_path, "--profile", what="a profile file"),
        default=None,
        metavar="PATH",
        help="an existing profile to compare the sweep against",
    )
    parser.add_argument(
        "--profiles-dir",
        type=typed(_path, "--profiles-dir", what="a folder"),
        default=Path("profiles"),
        metavar="DIR",
        help="where Export suggests writing profiles (default profiles/)",
    )


def _path(name: str, text: str, what: str) -> Path:
    return Path(non_blank(name, text, what=what))


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
