"""The runtime with its profile against a naive deployment, per built-in model, in one run.

Run: ``.venv/bin/python tests/benchmarks/runtime_vs_naive.py [--repeats 5] [--models mlp,pyloop,sleep]``

For each built-in model (mlp, pyloop, sleep) this loads ``profiles/<name>.yaml`` — the profile
``tuner bench`` exported; a missing one is reported and that model skipped — and times, on the same
inputs, alternating, ``--repeats`` times each:

* **runtime**: ``Runtime.from_profile(profile)`` (everything the profile says), ``list(rt.map(items))``;
* **naive**: the same items arrive as requests of ``REQUEST`` (64) items — the batches the issue's
  figures quote — and a naive deployment maps the model over them:
  ``multiprocessing.Pool(os.cpu_count()).map(model, requests)`` with the default chunking (chunksize
  ``ceil(len(requests) / (4 * processes))``, as ``Pool.map`` computes it) and default BLAS threads.
  Each request is one call of the same model function the engine calls — built lazily once per
  worker process by ``tuner.models.load_model`` — so both run the same code path, deployed
  differently: the runtime re-partitions the stream by the profile and limits threads per worker.

Both are warm (model loaded in every worker) before the clock starts; the pool start-up is not
timed for either. Printed: medians of items/s, the ratio runtime/naive (target >= 1.0 everywhere,
>= 2 on mlp) and the runtime's throughput as a share of the profile's ``evidence.throughput``
(target >= 95%; ``runtime_vs_bench.py`` measures that properly: long runs, alternating, split into
steady rate and tail). ``--fallback`` runs a model with no profile on a stated hand-picked configuration
instead of skipping it (not a profile figure; labelled as such).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODELS = ("mlp", "pyloop", "sleep")
N_ITEMS = {"mlp": 32768, "pyloop": 20000, "sleep": 20000}

_naive_fn: Any = None


def _naive_chunk(chunk: Any) -> Any:
    """The naive worker: build the model once per process (lazily), run one chunk through it."""
    global _naive_fn
    if _naive_fn is None:
        from tuner.models import load_model

        _naive_fn = load_model(os.environ["TUNER_BENCH_SPEC"])
    return _naive_fn(chunk)


REQUEST = 64
SETTLE_S = 1.0


def requests_of(items: Any) -> list[Any]:
    """The stream as the naive deployment receives it: requests of REQUEST items."""
    return [items[i : i + REQUEST] for i in range(0, len(items), REQUEST)]


def time_naive(pool: Any, items: Any) -> float:
    requests = requests_of(items)
    t0 = time.perf_counter()
    out = pool.map(_naive_chunk, requests)  # default chunking
    dt = time.perf_counter() - t0
    assert sum(len(o) for o in out) == len(items)
    return len(items) / dt


def time_runtime(rt: Any, items: Any) -> float:
    t0 = time.perf_counter()
    n = sum(1 for _ in rt.map(items))
    dt = time.perf_counter() - t0
    assert n == len(items)
    return len(items) / dt


def bench_model(name: str, repeats: int, fallback: bool, partition: int = 64) -> dict[str, Any] | None:
    from tuner.models import input_generator
    from tuner.runtime import Runtime

    spec = f"builtin:{name}"
    path = REPO / "profiles" / f"{name}.yaml"
    if path.exists():
        rt = Runtime.from_profile(path)
        recorded = rt.profile.evidence.throughput if rt.profile is not None else None
        source = str(path.relative_to(REPO))
    elif fallback:
        from tuner.hardware import probe

        cores = probe().usable_cores
        rt = Runtime(spec, backend="process", workers=cores, threads_per_worker=1, partition_size=partition)
        recorded = None
        source = "NO PROFILE — hand-picked configuration"
    else:
        print(f"{name}: {path.relative_to(REPO)} is missing (run `tuner bench` for it); skipped")
        return None
    gen = input_generator(spec)
    assert gen is not None
    items = gen(N_ITEMS[name], 1)
    os.environ["TUNER_BENCH_SPEC"] = spec
    procs = os.cpu_count() or 1
    rt_rates: list[float] = []
    naive_rates: list[float] = []
    # Pool's default start method (fork on Linux) and default BLAS threads: what a naive deployment gets.
    with rt, mp.Pool(procs) as pool:
        pool.map(_naive_chunk, requests_of(items[: procs * 4 * REQUEST]))  # warm-up
        list(rt.map(items[: 4 * rt.settings.partition_size * max(1, rt.workers)]))  # warm-up
        for _ in range(repeats):
            # Idle BLAS threads of the other deployment spin for a while after their last call
            # (OpenBLAS does), stealing the first moments of the next run: each run starts after a
            # settle pause. This is a benchmark's quiet period, not synchronisation.
            time.sleep(SETTLE_S)
            rt_rates.append(time_runtime(rt, items))
            time.sleep(SETTLE_S)
            naive_rates.append(time_naive(pool, items))
        settings = rt.settings.describe()
        rs = rt.settings
    # The host drifts (seen here: the same single-process pyloop rate 30% apart an hour apart), so the
    # profile's recorded figure is also re-measured now, in this run, by tuner bench's own trial.
    from tuner.bench.measure import MeasureSettings, run_trial
    from tuner.bench.types import TrialConfig

    cfg = TrialConfig(rs.backend, rs.workers, rs.threads_per_worker or 1, rs.partition_size)
    now = run_trial(spec, items, cfg, MeasureSettings()).throughput
    r, n = statistics.median(rt_rates), statistics.median(naive_rates)
    return {
        "model": name,
        "source": source,
        "settings": settings,
        "runtime": r,
        "naive": n,
        "ratio": r / n,
        "recorded": recorded,
        "share": (r / recorded) if recorded else None,
        "measured_now": now,
        "runtime_runs": rt_rates,
        "naive_runs": naive_rates,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--fallback", action="store_true", help="run models without a profile on a stated config"
    )
    parser.add_argument("--fallback-partition", type=int, default=64, help="partition size with --fallback")
    args = parser.parse_args(argv)
    print(
        f"{os.cpu_count()} CPUs (os.cpu_count()); naive = Pool({os.cpu_count()}).map, default chunking/threads"
    )
    rows = []
    for name in args.models.split(","):
        row = bench_model(name.strip(), args.repeats, args.fallback, args.fallback_partition)
        if row is None:
            continue
        rows.append(row)
        share = (
            (
                f"{row['share']:.0%} of profile's {row['recorded']:,.0f}/s"
                if row["share"] is not None
                else "n/a"
            )
            + f", {row['runtime'] / row['measured_now']:.0%} of the same config re-measured now ({row['measured_now']:,.0f}/s)"
        )
        target = 2.0 if row["model"] == "mlp" else 1.0
        ok = "ok" if row["ratio"] >= target else f"BELOW TARGET {target:g}x"
        print(
            f"{row['model']:<7} runtime {row['runtime']:>10,.0f} items/s   naive {row['naive']:>10,.0f} items/s   "
            f"ratio {row['ratio']:.2f}x ({ok})   {share}\n"
            f"        {row['source']}: {row['settings']}\n"
            f"        runs runtime {[round(x) for x in row['runtime_runs']]} naive {[round(x) for x in row['naive_runs']]}"
        )
    if not rows:
        print("nothing measured: no profiles/<model>.yaml yet (or pass --fallback)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
