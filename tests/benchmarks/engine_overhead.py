"""The engine's dispatch cost per partition against multiprocessing.Pool and ProcessPoolExecutor.

Same workers (2), same chunk size, measured side by side in one run, repeated, medians:

  tiny tasks      N items, one per partition/chunk; the function returns its input. Cost per task.
  1 MB numpy      partitions of 128 rows x 1024 float64 (1 MiB); the function sums rows. Cost per
                  partition — dominated by moving the data (the engine uses shared memory).

Targets (issue 2): engine <= 1.0x Pool on tiny tasks, <= 0.5x Pool on 1 MB partitions.
Run: python tests/benchmarks/engine_overhead.py [--repeats 5]
     python tests/benchmarks/engine_overhead.py --smoke   # 1 run of 500 tiny tasks and 10 partitions: does it run?
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import _models as m
from tuner.engine import Engine, EngineConfig

WORKERS = 2
SPEC = f"{Path(m.__file__).resolve()}"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tiny", type=int, default=20000, help="tiny tasks per run")
    ap.add_argument("--big", type=int, default=200, help="1 MB partitions per run")
    ap.add_argument("--smoke", action="store_true", help="1 run, 500 tiny tasks, 10 partitions: does it run?")
    args = ap.parse_args()
    if args.smoke:
        args.repeats, args.tiny, args.big = 1, 500, 10

    tiny = list(range(args.tiny))
    rows = 128
    big = np.random.default_rng(0).random((args.big * rows, 1024))  # 1 MiB per 128 rows
    chunks = [big[i : i + rows] for i in range(0, len(big), rows)]

    ctx = get_context("forkserver")
    results: dict[str, list[float]] = {}
    with (
        ctx.Pool(WORKERS) as pool,
        ProcessPoolExecutor(WORKERS, mp_context=ctx) as ppe,
        Engine(f"{SPEC}:batch", EngineConfig(workers=WORKERS, partition_size=1, threads_per_worker=1)) as eng_tiny,
        Engine(f"{SPEC}:batch_sum", EngineConfig(workers=WORKERS, partition_size=rows, threads_per_worker=1)) as eng_big,
    ):
        # warm up every pool once (processes started, modules imported)
        list(pool.imap(m.one, range(100), chunksize=1))
        list(ppe.map(m.one, range(100), chunksize=1))
        list(eng_tiny.map(range(100)))
        list(pool.imap(m.array_sum, chunks[:4], chunksize=1))
        list(eng_big.map_partitions(big[: 4 * rows]))
        cases = {
            "tiny/Pool.imap": lambda: list(pool.imap(m.one, tiny, chunksize=1)),
            "tiny/ProcessPoolExecutor.map": lambda: list(ppe.map(m.one, tiny, chunksize=1)),
            "tiny/engine.map": lambda: list(eng_tiny.map(tiny)),
            "1MB/Pool.imap": lambda: list(pool.imap(m.array_sum, chunks, chunksize=1)),
            "1MB/ProcessPoolExecutor.map": lambda: list(ppe.map(m.array_sum, chunks, chunksize=1)),
            "1MB/engine.map_partitions": lambda: list(eng_big.map_partitions(big)),
        }
        for r in range(args.repeats):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))  # alternate to spread drift
            for name in order:
                results.setdefault(name, []).append(timed(cases[name]))

    per = {
        name: statistics.median(ts) / (args.tiny if name.startswith("tiny") else args.big) * 1e6
        for name, ts in results.items()
    }
    print(f"engine dispatch overhead — {WORKERS} workers, median of {args.repeats} runs")
    if args.smoke:
        print("smoke run: the figures below show that each case ran, not what dispatch costs")
    for group, n in (("tiny", args.tiny), ("1MB", args.big)):
        base = per[f"{group}/Pool.imap"]
        print(f"\n{group} ({n} per run)          us/task   vs Pool")
        for name, v in per.items():
            if name.startswith(group):
                print(f"  {name:34s} {v:8.1f}   {v / base:5.2f}x")
    tiny_ratio = per["tiny/engine.map"] / per["tiny/Pool.imap"]
    big_ratio = per["1MB/engine.map_partitions"] / per["1MB/Pool.imap"]
    print(f"\ntarget tiny <= 1.00x Pool: {tiny_ratio:.2f}x {'ok' if tiny_ratio <= 1.0 else 'MISSED'}")
    print(f"target 1MB  <= 0.50x Pool: {big_ratio:.2f}x {'ok' if big_ratio <= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
