"""Does the runtime deliver what the profile says? ``Runtime.from_profile(...).map`` against ``tuner bench``'s
own trial of the same configuration, back to back, alternating (target: >= 95%).

Run: ``.venv/bin/python tests/benchmarks/runtime_vs_bench.py [--repeats 3] [--seconds 12] [--models mlp,pyloop,sleep]``
Smoke: ``.venv/bin/python tests/benchmarks/runtime_vs_bench.py --smoke`` — mlp only, one repeat, a 0.5 s
runtime run, 0.1 s trial windows, 0.1 s settles: checks the script runs; its figures mean nothing.

For each built-in model with a profile in ``profiles/``, ``--repeats`` times, in alternating order:

* **bench**: ``run_trial`` at the profile's configuration (closed loop, warm-up excluded, median of the
  stable windows) — the figure a profile's ``evidence.throughput`` is;
* **runtime**: a fresh ``Runtime.from_profile(profile, drift=False)``, warmed (workers started, a few partitions run),
  then one ``map`` over about ``--seconds`` of items (a long run, so the start and the end weigh
  little). The input is the model's generated rows cycled without copying (a sequence whose slices are
  views of one block, as the benchmark's trial cycles its inputs), consumed one output at a time.

Printed per model: the medians of both, and the runtime's throughput as a share of the benchmark's, split:

* **end to end** — items / wall time of the whole ``map`` call (the figure a user gets);
* **steady** — the rate between 10% and 90% of the outputs (no pipeline fill, no drain);
* **tail** — what the fill and the drain cost: wall time beyond ``items / steady rate``, as a share;
* so end to end ≈ steady × (1 − tail), and steady / bench is the runtime's own cost against the
  benchmark's closed loop (the map's deeper look-ahead window, per-item iteration in the caller);
* **pairs** — each runtime run over the benchmark run next to it, median: on a host whose speed drifts,
  the figure least moved by the drift.

The runtime runs twice per repeat, side by side (issue 20: the cost of metrics and drift on the hot
path, target >= 95%):

* **metrics off** — ``Runtime.from_profile(profile, drift=False)``, nothing scraped: the figures above;
* **metrics on** — ``Runtime.from_profile(profile)`` (its drift watch on, the default) with a
  ``prometheus_client`` registry from ``tuner.runtime.metrics.registry_for(rt)`` that a thread scrapes
  every second (``generate_latest``, as a Prometheus server would), over the same items.

Printed: metrics on against the benchmark and against metrics off (medians, and the median of each
repeat's on/off pair).

The benchmark's figure is the median of its *last 3 windows that agreed within 5%*: on a noisy host the
trial runs until it finds a calm stretch, so it leans high against a long run that averages over
everything. That is part of what this script measures, not an error in it.

The host is shared with other work while this runs: state that with any figure.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODELS = ("mlp", "pyloop", "sleep")
SETTLE_S = 1.0
SMOKE_SETTLE_S = 0.1
BASE_PARTITIONS = 64  # the block cycled over: 64 partitions of distinct rows
SCRAPE_S = 1.0  # the metrics arm's scrape interval


class Cycled:
    """``n`` items that are ``base`` repeated: slices are views of ``base`` (no copy, no wrap-around).

    ``len(base)`` is a multiple of the partition size, and the runtime slices at multiples of it, so
    every slice falls inside one repetition — exactly the benchmark's cycling of its inputs.
    """

    def __init__(self, base: Any, n: int) -> None:
        self.base = base
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, s: slice) -> Any:
        m = len(self.base)
        start, stop, _ = s.indices(self.n)
        lo = start % m
        hi = lo + (stop - start)
        if hi > m:
            raise IndexError("slice crosses a repetition: partition size does not divide the block")
        return self.base[lo:hi]


class Scraper(threading.Thread):
    """Scrapes ``registry`` every ``every_s`` seconds, as a Prometheus server would."""

    def __init__(self, registry: Any, every_s: float = SCRAPE_S) -> None:
        super().__init__(name="scraper", daemon=True)
        self.registry, self.every_s = registry, every_s
        self.stop = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        from prometheus_client import generate_latest

        while not self.stop.wait(self.every_s):
            generate_latest(self.registry)
            self.scrapes += 1


def time_runtime(
    path: Path, base: Any, n: int, settle_s: float = SETTLE_S, metrics: bool = False
) -> dict[str, float]:
    """One long ``map``; ``metrics``: the drift watch on and the registry scraped every second
    (off: ``drift=False``, no registry)."""
    from tuner.runtime import Runtime

    scraper: Scraper | None = None
    with Runtime.from_profile(path, drift=metrics) as rt:
        size = rt.settings.partition_size
        list(rt.map(base[: 4 * size * max(1, rt.workers)]))  # warm: every worker has run
        if metrics:
            from tuner.runtime.metrics import registry_for

            scraper = Scraper(registry_for(rt))
            scraper.start()
        gc.collect()
        time.sleep(settle_s)  # a quiet start, as for the benchmark's trial
        marks: list[tuple[int, float]] = []
        count = 0
        t0 = time.perf_counter()
        for _ in rt.map(Cycled(base, n)):
            count += 1
            if count % size == 0:
                marks.append((count, time.perf_counter()))
        t_end = time.perf_counter()
        if scraper is not None:
            scraper.stop.set()
            scraper.join(5.0)
            assert scraper.scrapes >= 1 or t_end - t0 < 2 * SCRAPE_S, "the registry was never scraped"
    assert count == n, (count, n)
    lo = next(m for m in marks if m[0] >= 0.1 * n)
    hi = next(m for m in marks if m[0] >= 0.9 * n)
    steady = (hi[0] - lo[0]) / (hi[1] - lo[1])
    wall = t_end - t0
    return {"end_to_end": n / wall, "steady": steady, "tail": 1.0 - (n / steady) / wall, "wall": wall}


def _have_metrics() -> bool:
    import importlib.util

    return importlib.util.find_spec("prometheus_client") is not None


def time_bench(spec: str, base: Any, path: Path, smoke: bool = False) -> float:
    from tuner.bench.measure import MeasureSettings, run_trial
    from tuner.bench.types import TrialConfig
    from tuner.profile import load_profile

    d = load_profile(path).deployment()  # a profile's threads_per_worker "default" is None here
    cfg = TrialConfig(d.backend, d.workers, d.threads_per_worker, d.partition_size, d.knobs, d.placement)
    time.sleep(SMOKE_SETTLE_S if smoke else SETTLE_S)
    settings = MeasureSettings.for_window(0.1) if smoke else MeasureSettings()
    return run_trial(spec, base, cfg, settings).throughput


def bench_model(name: str, repeats: int, seconds: float, smoke: bool = False) -> dict[str, Any] | None:
    from tuner.models import input_generator
    from tuner.profile import load_profile

    path = REPO / "profiles" / f"{name}.yaml"
    if not path.exists():
        print(f"{name}: {path.relative_to(REPO)} is missing (run `tuner bench` for it); skipped")
        return None
    spec = f"builtin:{name}"
    rec = load_profile(path).effective_recommended()
    gen = input_generator(spec)
    assert gen is not None
    base = gen(BASE_PARTITIONS * rec.partition_size, 1)
    bench: list[float] = []
    runs: list[dict[str, float]] = []
    on: list[dict[str, float]] = []
    n = 0
    arms = ("bench", "runtime", "metrics") if _have_metrics() else ("bench", "runtime")
    for i in range(repeats):
        order = arms[i % 3 :] + arms[: i % 3]  # each arm first in turn (bench first in the first repeat)
        for which in order:
            if which == "bench":
                bench.append(time_bench(spec, base, path, smoke))
                continue
            if not n:  # size the long run from the first benchmark figure (bench runs first)
                rate = 1.25 * bench[0]  # generous: a run must last >= `seconds` on a fast stretch
                n = max(1, round(rate * seconds / rec.partition_size)) * rec.partition_size
            got = time_runtime(
                path, base, n, SMOKE_SETTLE_S if smoke else SETTLE_S, metrics=which == "metrics"
            )
            (on if which == "metrics" else runs).append(got)
    b = statistics.median(bench)
    # Each repeat's runtime run against the benchmark run right next to it: a slow drift of the
    # host cancels out of these, not out of the medians.
    pairs = [r["end_to_end"] / x for r, x in zip(runs, bench, strict=True)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("end_to_end", "steady", "tail", "wall")}
    metrics: dict[str, Any] = {}
    if on:
        metrics = {
            "metrics_e2e": statistics.median(r["end_to_end"] for r in on),
            "metrics_runs": [r["end_to_end"] for r in on],
            "on_off_pair": statistics.median(
                a["end_to_end"] / b["end_to_end"] for a, b in zip(on, runs, strict=True)
            ),
        }
    return {
        **metrics,
        "model": name,
        "config": f"{rec.backend} ×{rec.workers} · {rec.threads_per_worker} thread · partition {rec.partition_size}",
        "items": n,
        "bench": b,
        **med,
        "pair_ratio": statistics.median(pairs),
        "pair_ratios": pairs,
        "bench_runs": bench,
        "e2e_runs": [r["end_to_end"] for r in runs],
        "steady_runs": [r["steady"] for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each runtime run")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--smoke", action="store_true", help="mlp, one short round: does it run?")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.seconds, args.models = 1, 0.5, "mlp"
        print("smoke run: the figures below show that each part ran, not what the runtime delivers")
    rows = []
    for name in args.models.split(","):
        row = bench_model(name.strip(), args.repeats, args.seconds, args.smoke)
        if row is None:
            continue
        rows.append(row)
        e2e, steady = row["end_to_end"] / row["bench"], row["steady"] / row["bench"]
        verdict = "ok" if e2e >= 0.95 else "BELOW 95%"
        print(
            f"{row['model']:<7} bench {row['bench']:>9,.0f}/s   runtime end to end {row['end_to_end']:>9,.0f}/s "
            f"= {e2e:.1%} ({verdict})   steady {row['steady']:>9,.0f}/s = {steady:.1%}   "
            f"tail {row['tail']:.1%} of {row['wall']:.1f} s\n"
            f"        back-to-back pairs runtime/bench: median {row['pair_ratio']:.1%} "
            f"{[f'{x:.0%}' for x in row['pair_ratios']]}\n"
            f"        {row['config']} · {row['items']:,} items per runtime run · medians of {args.repeats}\n"
            f"        runs: bench {[round(x) for x in row['bench_runs']]} "
            f"runtime e2e {[round(x) for x in row['e2e_runs']]} steady {[round(x) for x in row['steady_runs']]}",
            flush=True,
        )
        if "metrics_e2e" not in row:
            print(
                "        metrics on: not measured (prometheus_client is missing: pip install 'tuner[metrics]')"
            )
            continue
        m_bench = row["metrics_e2e"] / row["bench"]
        m_off = row["metrics_e2e"] / row["end_to_end"]
        print(
            f"        metrics on (drift watch, registry scraped every {SCRAPE_S:g} s) end to end "
            f"{row['metrics_e2e']:>9,.0f}/s = {m_bench:.1%} of bench ({'ok' if m_bench >= 0.95 else 'BELOW 95%'}), "
            f"{m_off:.1%} of metrics off ({'ok' if m_off >= 0.95 else 'BELOW 95%'}); on/off pairs median "
            f"{row['on_off_pair']:.1%}; runs {[round(x) for x in row['metrics_runs']]}",
            flush=True,
        )
    if not rows:
        print("nothing measured: no profiles/<model>.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
