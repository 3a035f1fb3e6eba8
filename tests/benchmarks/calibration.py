"""How reproducible is the host calibration, and how much of its budget does it use?

Runs :func:`tuner.calibrate.calibrate` N times in one process on this host and prints, per kernel
and mode, the spread of the scores over the runs (median, min–max, spread = (max − min) / median),
how often one run's own 95% CI covers the median of all runs (a CI that covers it rarely
understates the run-to-run noise), and the share of the budget each run used. Then every pair of
runs is compared as if they were two hosts (:func:`tuner.calibrate.compare`): on one host the
hosts must read alike, so the share of ratios that "differ beyond the CIs" is the false-difference
rate, printed with the floors :data:`tuner.calibrate.REPRODUCIBILITY` in force and the floor that
would have kept it at 5% (the 95th percentile of |log ratio| over the pairs, / √2 per score).

Other processes share the host: every run prints the outside load it saw (mean, max over its reps)
and the reps the noise guard discarded; the load in the second before the first run is printed too.

    .venv/bin/python tests/benchmarks/calibration.py              # 8 runs of 5 s, ~45 s
    .venv/bin/python tests/benchmarks/calibration.py --smoke      # 2 runs of 1.5 s, a few seconds
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time

import psutil

from tuner.calibrate import KERNELS, MODES, REPRODUCIBILITY, UNITS, Calibration, calibrate, compare
from tuner.hostload import DEFAULT_MAX_OUTSIDE, HostSampler


def _load_now(seconds: float = 1.0) -> float:
    s = HostSampler()
    a = s.snapshot()
    time.sleep(seconds)  # a measurement interval, not synchronisation
    return s.interval(a, s.snapshot()).outside


def _run_line(i: int, c: Calibration, steal: float) -> str:
    pairs = " ".join(
        f"{k[:2]}/{m[:3]} {s.score:.4g}{'*' if s.busy else ''}"
        for k in KERNELS
        for m in MODES
        if (s := c.score(k, m)) is not None
    )
    return (
        f"run {i + 1:2d}: {c.elapsed_s:4.2f} s ({c.elapsed_s / c.budget_s:4.0%} of budget), setup "
        f"{c.setup_s * 1000:4.0f} ms (runners started in {c.start_s * 1000:3.0f} ms), outside "
        f"{c.outside_load:4.0%} (max {c.outside_load_max:4.0%}, steal {steal:3.0%}), {c.discarded:2d} of {c.reps:2d} reps "
        f"discarded | {pairs}"
    )


def _spread(runs: list[Calibration]) -> None:
    print(
        f"\n{'kernel/mode':16s} {'median':>9s} {'min–max':>19s} {'spread':>7s} {'CV':>6s}  CI covers median"
    )
    for k in KERNELS:
        for m in MODES:
            scores = [s for c in runs if (s := c.score(k, m)) is not None and not s.busy]
            if not scores:
                continue
            xs = [s.score for s in scores]
            med = statistics.median(xs)
            cv = statistics.pstdev(xs) / statistics.fmean(xs)
            covers = sum(1 for s in scores if s.ci[0] <= med <= s.ci[1])
            print(
                f"{k + '/' + m:16s} {med:9.4g} {min(xs):9.4g}–{max(xs):<9.4g} "
                f"{(max(xs) - min(xs)) / med:7.1%} {cv:6.1%}  {covers} of {len(scores)}  ({UNITS[k]})"
            )


def _false_differences(runs: list[Calibration]) -> None:
    logs: dict[str, list[float]] = {k: [] for k in KERNELS}
    differ = total = 0
    for a, b in itertools.combinations(runs, 2):
        hs = compare(a, b)
        for r in hs.ratios:
            logs[r.kernel].append(abs(math.log(r.ratio)))
            total += 1
            differ += r.differs
    if not total:
        return
    print(
        f"\nsame host compared with itself: {differ} of {total} ratios 'differ beyond the CIs' "
        f"({differ / total:.0%}) with REPRODUCIBILITY per score "
        + ", ".join(f"{k} {v:.0%}" for k, v in REPRODUCIBILITY.items())
    )
    for k, xs in logs.items():
        if xs:
            xs.sort()
            p95 = xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)]
            print(
                f"  {k:7s} |ratio − 1| over run pairs: median {math.expm1(statistics.median(xs)):.1%}, "
                f"p95 {math.expm1(p95):.1%} → a per-score floor of {math.expm1(p95 / math.sqrt(2)):.1%} "
                f"would keep same-host differences at ~5%"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--max-outside", type=float, default=DEFAULT_MAX_OUTSIDE)
    ap.add_argument("--smoke", action="store_true", help="2 runs of 1.5 s: checks the script works")
    args = ap.parse_args()
    runs_n, budget = (2, 1.5) if args.smoke else (args.runs, args.budget)
    print(
        f"{runs_n} calibrations of {budget:g} s on {os.cpu_count()} CPUs, noise guard limit "
        f"{args.max_outside:.0%}; outside load in the second before: {_load_now():.0%}"
    )
    runs = []
    t0 = time.perf_counter()
    sampler = HostSampler()  # the runners are this process's children: its own, not outside
    for i in range(runs_n):
        a = sampler.snapshot()
        c = calibrate(budget_s=budget, max_outside=args.max_outside)
        steal = sampler.interval(a, sampler.snapshot()).steal
        runs.append(c)
        print(_run_line(i, c, steal), flush=True)
    used = [c.elapsed_s / c.budget_s for c in runs]
    print(
        f"\nbudget used: min {min(used):.0%}, median {statistics.median(used):.0%}, max {max(used):.0%} "
        f"({time.perf_counter() - t0:.1f} s in all); reps discarded by the noise guard: "
        f"{sum(c.discarded for c in runs)} of {sum(c.reps for c in runs)}"
    )
    _spread(runs)
    _false_differences(runs)
    left = [p.pid for p in psutil.Process().children(recursive=True)]
    print(f"\nprocesses left behind: {len(left)}{' ' + str(left) if left else ''}")


if __name__ == "__main__":
    main()
