"""The ray backend against the process backend on this one host: what a Ray actor call costs.

Same engine, same workers (2), same model, side by side in one run, medians of repeats:

  dispatch     N one-item partitions of an identity model: wall time per partition (the round
               trip: engine -> worker -> engine). Baseline: the process backend.
  throughput   builtin:mlp and builtin:sleep over partition sizes; items/s of ray over process,
               with each size's median service time (time inside the model call) beside it.

Target (issue 11): ray within 10% of process (ratio >= 0.90) wherever a partition's service time is
>= 10 ms; the script reports, per model, the smallest partition size from which the gap stays
closed. The Ray head is started by ``tuner.cluster.connect("local")`` on loopback, with
RAY_AUTH_MODE=disabled (nothing outside this machine can reach it; no token file is written).

Run: python tests/benchmarks/ray_overhead.py [--repeats 3] [--quick]
Smoke: python tests/benchmarks/ray_overhead.py --smoke   (one repeat, 100 one-item partitions, one
partition size per model: checks the script runs; its figures mean nothing)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import _models as m
from tuner.engine import Engine, EngineConfig
from tuner.engine import events as ev
from tuner.models import input_generator

WORKERS = 2
SPEC = f"{Path(m.__file__).resolve()}"


def run_once(
    backend: str, model: str, items: Any, size: int, workers: int = WORKERS, prefetch: int = 16
) -> tuple[float, list[float]]:
    """(wall seconds of map over items, service times) with a started engine (start excluded)."""
    svc: list[float] = []

    def on(e: Any) -> None:
        if isinstance(e, ev.PartitionFinished):
            svc.append(e.service_s)

    cfg = EngineConfig(
        backend=backend, workers=workers, partition_size=size, threads_per_worker=1, prefetch=prefetch
    )
    with Engine(model, cfg, on_event=on) as eng:
        list(eng.map(items[: size * 4], size))  # warm: model loaded, first calls done
        svc.clear()
        t0 = time.perf_counter()
        n = sum(1 for _ in eng.map(items, size))
        wall = time.perf_counter() - t0
    assert n == len(items)
    return wall, svc


def median_pair(model: str, items: Any, size: int, repeats: int) -> dict[str, float]:
    walls: dict[str, list[float]] = {"process": [], "ray": []}
    svcs: list[float] = []
    for _ in range(repeats):
        for backend in ("process", "ray"):  # interleaved, so drift on a busy host hits both
            wall, svc = run_once(backend, model, items, size)
            walls[backend].append(wall)
            svcs.extend(svc)
    p, r = statistics.median(walls["process"]), statistics.median(walls["ray"])
    return {"process": len(items) / p, "ray": len(items) / r, "service_ms": 1000 * statistics.median(svcs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and items")
    ap.add_argument("--smoke", action="store_true", help="one repeat, one size per model: does it run?")
    args = ap.parse_args()
    if args.smoke:
        args.quick, args.repeats = True, 1

    from tuner.cluster import connect

    with connect("local", num_cpus=WORKERS) as conn:
        print(conn.info().summary())
        n_tiny = 100 if args.smoke else 500 if args.quick else 2000
        tiny = list(range(n_tiny))
        walls: dict[str, list[float]] = {"process": [], "ray": []}
        for _ in range(args.repeats):
            for backend in ("process", "ray"):
                walls[backend].append(run_once(backend, f"{SPEC}:batch", tiny, 1)[0])
        per = {b: 1000 * statistics.median(w) / n_tiny for b, w in walls.items()}
        print(
            f"\ndispatch, one-item partitions, {WORKERS} workers, pipelined: process {per['process']:.3f} ms, "
            f"ray {per['ray']:.3f} ms per partition -> ray/process {per['ray'] / per['process']:.2f}x"
        )
        # one worker, one partition in flight: the full round trip of one call
        rtt: dict[str, list[float]] = {"process": [], "ray": []}
        for _ in range(args.repeats):
            for backend in ("process", "ray"):
                rtt[backend].append(run_once(backend, f"{SPEC}:batch", tiny[: n_tiny // 2], 1, 1, 1)[0])
        per = {b: 1000 * statistics.median(w) / (n_tiny // 2) for b, w in rtt.items()}
        print(
            f"round trip, 1 worker, 1 partition in flight: process {per['process']:.3f} ms, "
            f"ray {per['ray']:.3f} ms per call -> ray/process {per['ray'] / per['process']:.2f}x"
        )

        sizes = [64] if args.smoke else [4, 64, 256] if args.quick else [1, 4, 16, 64, 128, 256, 512]
        for model in ("builtin:mlp", "builtin:sleep"):
            gen = input_generator(model)
            print(f"\n{model}: throughput, {WORKERS} workers x 1 thread (items/s, medians of {args.repeats})")
            print(f"{'partition':>9} {'service ms':>10} {'process':>10} {'ray':>10} {'ray/process':>11}")
            closed_from: int | None = None
            for size in sizes:
                # enough items for ~40 partitions per worker, at least 2000
                n = max(2000, size * 40 * WORKERS) if not args.quick else max(500, size * 10 * WORKERS)
                items = gen(n, 0)
                r = median_pair(model, items, size, args.repeats)
                ratio = r["ray"] / r["process"]
                mark = ""
                if r["service_ms"] >= 10.0:
                    mark = "  ok" if ratio >= 0.90 else "  MISSED (service >= 10 ms)"
                print(
                    f"{size:>9} {r['service_ms']:>10.2f} {r['process']:>10.0f} {r['ray']:>10.0f} {ratio:>11.2f}{mark}"
                )
                if ratio >= 0.90:
                    closed_from = size if closed_from is None else closed_from
                else:
                    closed_from = None
            print(
                f"  gap within 10% from partition size {closed_from} on"
                if closed_from is not None
                else "  gap not within 10% at the largest size measured"
            )


if __name__ == "__main__":
    main()
