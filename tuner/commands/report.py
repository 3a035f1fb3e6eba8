"""``tuner report PROFILE [--results R.jsonl] --out report.html``: one self-contained HTML page.

With ``--compare B.yaml`` (and ``--compare-results R2.jsonl``) the page compares the two runs:
the same charts overlaid, what changed beyond the confidence intervals, whether the hosts were
alike. ``--rate R`` adds a capacity plan (a profile measured with ``--online``). Exit codes: 0 the
page was written; 2 bad input (a profile, results file or argument) — one line, nothing written;
1 a capacity plan that no measured rate can meet.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from tuner.commands.args import finite, non_blank, typed
from tuner.errors import BadInput, ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``PROFILE [--results R] [--compare B [--compare-results R2]] [--rate R ...] --out FILE``."""
    parser.epilog = "exit codes: 0 written; 1 no measured rate meets the plan's objective; 2 bad input"
    a = parser.add_argument
    a(
        "profile",
        type=typed(non_blank, "PROFILE", what="a profile file"),
        metavar="PROFILE",
        help="profile YAML",
    )
    a(
        "--results",
        type=typed(non_blank, "--results", what="a .jsonl file"),
        metavar="R.jsonl",
        help="the sweep's results (tuner bench --results): every trial charted, not only the profile's few",
    )
    a(
        "--compare",
        type=typed(non_blank, "--compare", what="a profile file"),
        metavar="B.yaml",
        help="compare PROFILE (A) with this profile (B)",
    )
    a(
        "--compare-results",
        type=typed(non_blank, "--compare-results", what="a .jsonl file"),
        metavar="R2.jsonl",
        help="B's results, with --compare",
    )
    a(
        "--rate",
        type=typed(finite, "--rate", gt=0, what="requests/s"),
        metavar="R",
        help="add a capacity plan for R requests/s (a profile measured with --online; like tuner plan)",
    )
    a("--p99-ms", type=typed(finite, "--p99-ms", gt=0, what="milliseconds"), metavar="MS",
      help="the plan's p99 objective (default: the profile's)")  # fmt: skip
    a("--headroom", type=typed(finite, "--headroom", ge=0, le=95, what="a percentage"),
      metavar="PCT", help="the plan's headroom (a percentage from 0 to 95; default 30)")  # fmt: skip
    a("--out", type=typed(non_blank, "--out", what="an .html file"), required=True, metavar="FILE",
      help="write the page here (atomically; missing folders are created)")  # fmt: skip


def _check(args: argparse.Namespace) -> None:
    if args.compare_results and not args.compare:
        raise BadInput("--compare-results needs --compare B.yaml (try 'tuner report --help')")
    if args.compare and args.rate is not None:
        raise BadInput("--rate makes a capacity plan for one profile: not with --compare")
    if args.rate is None and (args.p99_ms is not None or args.headroom is not None):
        raise BadInput("--p99-ms and --headroom shape a capacity plan: give --rate R as well")


def page_command(args: argparse.Namespace) -> str:
    """The ``tuner report`` command that makes this page again."""
    words = ["tuner", "report", args.profile]
    for flag in ("results", "compare", "compare_results", "rate", "p99_ms", "headroom"):
        v = getattr(args, flag)
        if v is not None:
            words += ["--" + flag.replace("_", "-"), f"{v:g}" if isinstance(v, float) else str(v)]
    return shlex.join([*words, "--out", args.out])


def run(args: argparse.Namespace) -> int:
    """Read everything, render the page, then write it in one atomic step (nothing on any error)."""
    from tuner.data import atomic_write_text
    from tuner.report import render_comparison, render_report
    from tuner.report.capacity import make_plan
    from tuner.report.data import read_profile, read_results

    _check(args)
    profile = read_profile(args.profile)
    results = read_results(args.results, profile.model.spec) if args.results else None
    if args.compare:
        other = read_profile(args.compare)
        results_b = read_results(args.compare_results, other.model.spec) if args.compare_results else None
        text = render_comparison(profile, other, results, results_b, page_command=page_command(args))
        what = "comparison"
    else:
        headroom = 30.0 if args.headroom is None else args.headroom
        plan = make_plan(profile, args.rate, p99_ms=args.p99_ms, headroom_pct=headroom) if args.rate else None
        sources = [args.profile] + ([args.results] if args.results else [])
        text = render_report(profile, results, plan=plan, sources=sources, page_command=page_command(args))
        what = "report"
    atomic_write_text(args.out, text, parents=True)
    print(f"{what} written to {args.out} ({len(text.encode()) / 1024:.0f} KiB)", file=sys.stderr)
    return int(ExitCode.OK)
