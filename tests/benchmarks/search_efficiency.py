"""Adaptive vs grid search on the built-in models, measured in one run.

For each model: a grid sweep over the default space and an adaptive sweep over the same space,
same measurement settings, no time budget. Prints, per model, the adaptive best throughput as a
share of the grid's best, and the adaptive measuring time as a share of the grid's.
Target (issue 3): >= 95% of the grid's best throughput in <= 1/3 of its measuring time.

Because both searches measure on a live host, the grid's best may be a lucky window; the script
also prints the grid's own figure for the configuration adaptive chose, and, when the two searches
chose different configurations, re-measures both back to back (alternating, twice each) — the
"confirmed" ratio — to tell a search miss from measurement noise. Results go to --save as JSON lines.

    .venv/bin/python tests/benchmarks/search_efficiency.py [--models mlp,pyloop,sleep] [--window 0.5]
    .venv/bin/python tests/benchmarks/search_efficiency.py --smoke   # a few seconds, figures mean nothing

Each sweep is the closed-loop stage of ``tuner bench``'s pipeline (``SweepPipeline(request).sweep()``)
with no default-deployment trials, no confirmation and no host calibration: the strategies alone.
``--smoke`` checks the script still runs: builtin:sleep over a space of 4 configurations (thread
backend, workers 1,2, partitions 16,256), 1024 items, 0.1 s windows, nothing saved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from tuner.bench.measure import MeasureSettings, run_trial
from tuner.bench.pipeline import SweepPipeline
from tuner.bench.request import SpaceRequest, SweepRequest
from tuner.bench.types import TrialConfig

#: --smoke: a space of four configurations
SMOKE_SPACE = SpaceRequest(backends=("thread",), workers=(1, 2), partition_sizes=(16, 256))


def sweep(
    model: str, strategy: str, settings: MeasureSettings, items: int, space: SpaceRequest
) -> tuple[SweepPipeline, float]:
    """The strategy's trials over the space, no budget; the time of the search (prepared beforehand)."""
    request = SweepRequest(
        model=model, strategy=strategy, budget_s=None, settings=settings, n_items=items, space=space,
        measure_default=False, measure_cold_start=False, calibration_s=0.0,
    )  # fmt: skip
    pipeline = SweepPipeline(request)
    pipeline.prepare()  # host, model, inputs, space: not part of the search's time
    t0 = time.perf_counter()
    pipeline.sweep()
    return pipeline, time.perf_counter() - t0


def confirm(sweep: SweepPipeline, a: TrialConfig, b: TrialConfig, settings: MeasureSettings) -> float:
    """Median throughput of ``a`` over that of ``b``, measured alternately, twice each."""
    p = sweep.prepare()
    got: dict[TrialConfig, list[float]] = {a: [], b: []}
    for _ in range(2):
        for c in (a, b):
            r = run_trial(p.model, p.inputs, c, settings, usable_cores=p.host.usable_cores)
            got[c].append(r.throughput)
    return statistics.median(got[a]) / statistics.median(got[b])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,pyloop,sleep")
    ap.add_argument("--window", type=float, default=0.5)
    ap.add_argument("--items", type=int, default=8192)
    ap.add_argument("--save", default="/tmp/search_efficiency.jsonl")
    ap.add_argument("--smoke", action="store_true", help="sleep, 4 configurations, 0.1 s windows: seconds")
    args = ap.parse_args()
    space = SpaceRequest()
    if args.smoke:
        args.models, args.window, args.items, args.save, space = "sleep", 0.1, 1024, os.devnull, SMOKE_SPACE
    settings = MeasureSettings(
        window_s=args.window, warmup_s=min(0.5, args.window), max_trial_s=12 * args.window
    )
    rows = []
    for name in args.models.split(","):
        model = f"builtin:{name}"
        grid, t_grid = sweep(model, "grid", settings, args.items, space)
        adaptive, t_adaptive = sweep(model, "adaptive", settings, args.items, space)
        g_best = max(grid.results, key=lambda r: r.throughput)
        a_best = max(adaptive.results, key=lambda r: r.throughput)
        same = next((r for r in grid.results if r.config == a_best.config), None)
        with open(args.save, "a") as f:
            for strategy, sw in (("grid", grid), ("adaptive", adaptive)):
                for r in sw.results:
                    f.write(json.dumps({"model": name, "strategy": strategy, **r.to_dict()}) + "\n")
        confirmed = (
            1.0 if a_best.config == g_best.config else confirm(grid, a_best.config, g_best.config, settings)
        )
        rows.append(
            (
                name,
                len(grid.results),
                len(adaptive.results),
                a_best.throughput / g_best.throughput,
                t_adaptive / t_grid,
                (same.throughput / g_best.throughput) if same else float("nan"),
                g_best.config.label(),
                a_best.config.label(),
                t_grid,
                t_adaptive,
                confirmed,
            )
        )
        print(
            f"{name}: grid {len(grid.results)} trials {t_grid:.0f} s best {g_best.config.label()} "
            f"{g_best.throughput:,.0f}/s | adaptive {len(adaptive.results)} trials {t_adaptive:.0f} s best "
            f"{a_best.config.label()} {a_best.throughput:,.0f}/s",
            flush=True,
        )
    print()
    print(
        f"{'model':8} {'grid':>5} {'adapt':>5} {'best ratio':>10} {'time ratio':>10} {'grid@adaptive':>13} "
        f"{'confirmed':>9}  verdict"
    )
    for name, ng, na, ratio, tratio, same_ratio, *_, confirmed in rows:
        # "confirmed": adaptive's pick over grid's, re-measured back to back (1.0 when they agree).
        ok = max(ratio, confirmed) >= 0.95 and tratio <= 1 / 3
        print(
            f"{name:8} {ng:5d} {na:5d} {ratio:10.1%} {tratio:10.1%} {same_ratio:13.1%} {confirmed:9.1%}  "
            f"{'meets target' if ok else 'MISSES target'} (>= 95% in <= 33.3%)"
        )


if __name__ == "__main__":
    main()
