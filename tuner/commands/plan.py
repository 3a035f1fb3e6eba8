"""``tuner plan PROFILE --rate R``: how many workers and hosts like the profile's serve R requests/s.

Reads the profile's ``online:`` section (``tuner bench --online``): the max rate within the p99
objective per configuration, and the closed-loop throughput by workers the Universal Scalability
Law is fitted to (:mod:`tuner.plan`). Prints the plan and its assumptions in words, or JSON with
``--json``; ``--cost-per-hour X`` (what one host costs) adds the plan's cost per hour and per million
requests. Exit codes: 0 a plan; 1 no measured rate meets the objective; 2 bad input — a profile
without an ``online:`` section included (run ``tuner bench --online`` first: closed-loop throughput
is not a rate within a latency objective, so no plan is made from it).
"""

from __future__ import annotations

import argparse
import json
import sys

from tuner.errors import ExitCode
from tuner.options import finite, non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``PROFILE --rate R [--p99-ms MS] [--headroom PCT] [--cost-per-hour X] [--json]``."""
    parser.epilog = "exit codes: 0 a plan; 1 no measured rate meets the objective; 2 bad input"
    a = parser.add_argument
    a(
        "profile",
        type=typed(non_blank, "PROFILE", what="a profile file"),
        metavar="PROFILE",
        help="profile YAML",
    )
    a(
        "--rate",
        type=typed(finite, "--rate", gt=0, what="requests/s"),
        required=True,
        metavar="R",
        help="requests/s to serve (> 0)",
    )
    a(
        "--p99-ms",
        type=typed(finite, "--p99-ms", gt=0, what="milliseconds"),
        metavar="MS",
        help="the p99 objective (default: the one the profile was measured at)",
    )
    a(
        "--headroom",
        type=typed(finite, "--headroom", ge=0, le=95, what="a percentage"),
        default=30.0,
        metavar="PCT",
        help="keep each host this far below its measured max rate (a percentage from 0 to 95; default 30)",
    )
    a(
        "--cost-per-hour",
        type=typed(finite, "--cost-per-hour", ge=0, what="a price per host-hour"),
        metavar="X",
        help="what one host costs per hour (any currency): adds the plan's cost per hour and per "
        "million requests (hosts × X / rate)",
    )
    a("--json", action="store_true", help="print the plan as JSON on stdout (nothing else)")


def run(args: argparse.Namespace) -> int:
    """Print the plan (see the module docstring)."""
    from tuner.plan import make_plan
    from tuner.profile import load_profile

    profile = load_profile(args.profile)
    plan = make_plan(
        profile, args.rate, p99_ms=args.p99_ms, headroom_pct=args.headroom, cost_per_hour=args.cost_per_hour
    )
    if args.json:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
        return int(ExitCode.OK)
    out = sys.stdout
    for line in plan.words:
        out.write(line + "\n")
    for w in plan.warnings:
        out.write(f"  warning: {w}\n")
    out.write("Assumptions:\n")
    for a in plan.assumptions:
        out.write(f"  - {a}\n")
    return int(ExitCode.OK)
