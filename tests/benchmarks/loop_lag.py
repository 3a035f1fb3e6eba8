"""How late does an event loop's own timer fire while a runtime serves that loop at its max rate?

Run: ``PYTHONPATH=. .venv/bin/python tests/benchmarks/loop_lag.py [--seconds 5] [--repeats 3] [--smoke]``

For each runtime — thread and process backend, ``builtin:sleep`` (latency-bound, releases the GIL)
and ``builtin:mlp`` (numpy, BLAS-bound) — with 2 workers, partitions of 64 and the default batching:

* **map**: the runtime's max rate, a plain ``map`` over the model's generated items (no loop);
* then, inside ``asyncio.run``, a ticker — ``await asyncio.sleep(0.01)`` in a loop; its lag is how
  late each tick fires — runs beside:

  - **idle**: nothing else (the host's own floor: a shared host shows here);
  - **asubmit**: ``--concurrency`` coroutines (default 8 × workers × partition size: enough to keep
    every worker busy with the next partition waiting), each awaiting ``asubmit`` in a loop;
  - **amap**: one ``async for`` over the items;
  - **submit**: for reference, the same per-item path without the loop — one thread calling
    ``submit`` (blocking at ``max_pending``) while the loop only ticks.

Printed per runtime and phase: items/s (and as a share of ``map``'s), the loop thread's CPU per item
(asubmit, amap: what serving costs the loop, whatever else runs on the host), the loop's lag at p50, p99 and
max (ms), and the threads of the process during the phase against before it (no thread per request;
the submit phase's producer is one thread, and asyncio's executor that runs it another).
The medians of ``--repeats`` runs are printed, with each run's figure.

``--smoke``: every runtime, 0.5 s phases, one repeat — checks that the script runs, not a figure.
The host is shared with other work while this runs: state that with any figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

RUNTIMES = (("thread", "sleep"), ("thread", "mlp"), ("process", "sleep"), ("process", "mlp"))
WORKERS = 2
PARTITION = 64
TICK_S = 0.01
PHASES = ("idle", "asubmit", "amap", "submit")


def percentile(xs: list[float], q: float) -> float:
    """tuner's one percentile (tuner.stats: nearest rank); nan for no values."""
    from tuner.stats import percentile as of

    return of(xs, q)


async def with_ticker(work: Callable[[], Awaitable[int]]) -> tuple[int, float, float, list[float], int]:
    """Run ``work`` (it returns the items it completed) beside a 10 ms ticker: (items, seconds, the
    loop thread's CPU seconds, the ticker's lags in seconds, the most threads seen in the process)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    peak = [threading.active_count()]

    async def tick() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(TICK_S)
            lags.append(loop.time() - t - TICK_S)
            peak[0] = max(peak[0], threading.active_count())

    ticker = asyncio.ensure_future(tick())
    t0, cpu0 = time.perf_counter(), time.thread_time()
    items = await work()
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    ticker.cancel()
    return items, elapsed, cpu, lags, peak[0]


def phase_work(rt: Any, which: str, base: Any, seconds: float, concurrency: int) -> Callable[[], Awaitable[int]]:
    """The coroutine of one phase: it completes items for ``seconds`` and returns how many."""

    async def idle() -> int:
        await asyncio.sleep(seconds)
        return 0

    async def asubmit() -> int:
        end = time.perf_counter() + seconds
        done = [0]

        async def producer(start: int) -> None:
            i = start
            while time.perf_counter() < end:
                await rt.asubmit(base[i % len(base)])
                done[0] += 1
                i += concurrency

        await asyncio.gather(*(producer(k) for k in range(concurrency)))
        return done[0]

    async def amap() -> int:
        n = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:  # the block again until the time is up
            async for _ in rt.amap(base):
                n += 1
        return n

    async def submit() -> int:
        # A thread of its own submits; the loop only ticks meanwhile (and awaits the thread's end).
        end = time.perf_counter() + seconds
        done = [0]

        def produce() -> None:
            i = 0
            futures: list[Any] = []
            while time.perf_counter() < end:
                futures.append(rt.submit(base[i % len(base)]))
                i += 1
                if len(futures) >= concurrency:  # keep the list short: count what has come back
                    for f in futures:
                        f.result()
                    done[0] += len(futures)
                    futures = []
            for f in futures:
                f.result()
            done[0] += len(futures)

        await asyncio.get_running_loop().run_in_executor(None, produce)
        return done[0]

    return {"idle": idle, "asubmit": asubmit, "amap": amap, "submit": submit}[which]


def map_rate(rt: Any, base: Any, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in rt.map(base):
            n += 1
    return n / (time.perf_counter() - t0)


def measure(backend: str, model: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """One run of every phase on a fresh runtime."""
    from tuner.models import input_generator
    from tuner.runtime import Runtime

    spec = f"builtin:{model}"
    gen = input_generator(spec)
    assert gen is not None
    base = gen(64 * PARTITION, 1)
    out: dict[str, Any] = {}
    with Runtime(spec, backend=backend, workers=WORKERS, partition_size=PARTITION) as rt:
        list(rt.map(base[: 4 * PARTITION]))  # warm: every worker has run
        rt.submit(base[0]).result()  # the batcher's two threads run from here on
        out["map"] = map_rate(rt, base, seconds)
        for which in PHASES:
            before = threading.active_count()
            items, elapsed, cpu, lags, peak = asyncio.run(
                with_ticker(phase_work(rt, which, base, seconds, concurrency))
            )
            out[which] = {
                "rate": items / elapsed,
                "cpu_us": cpu / items * 1e6 if items else float("nan"),
                "p50_ms": percentile(lags, 0.50) * 1000,
                "p99_ms": percentile(lags, 0.99) * 1000,
                "max_ms": max(lags) * 1000 if lags else float("nan"),
                "ticks": len(lags),
                "threads": (before, peak),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8 * WORKERS * PARTITION)
    parser.add_argument("--runtimes", default=",".join(f"{b}:{m}" for b, m in RUNTIMES))
    parser.add_argument("--smoke", action="store_true", help="0.5 s phases, one repeat: does it run?")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats = 0.5, 1
    for pair in args.runtimes.split(","):
        backend, model = pair.strip().split(":")
        runs = [measure(backend, model, args.seconds, args.concurrency) for _ in range(args.repeats)]
        maps = [r["map"] for r in runs]
        m = statistics.median(maps)
        print(
            f"{backend} × {WORKERS} · builtin:{model} · partition {PARTITION} · concurrency {args.concurrency}: "
            f"map {m:,.0f} items/s {[round(x) for x in maps]}",
            flush=True,
        )
        for which in PHASES:
            rows = [r[which] for r in runs]
            med = {k: statistics.median(x[k] for x in rows) for k in ("rate", "cpu_us", "p50_ms", "p99_ms", "max_ms")}
            share = f" = {med['rate'] / m:.0%} of map" if which != "idle" and m else ""
            cpu = f"loop CPU {med['cpu_us']:.1f} µs/item  " if which in ("asubmit", "amap") else ""
            threads = "; ".join(f"{b}→{p}" for b, p in (x["threads"] for x in rows))
            print(
                f"  {which:<8} {med['rate']:>9,.0f} items/s{share:<14} {cpu}loop lag p50 {med['p50_ms']:.2f} ms  "
                f"p99 {med['p99_ms']:.2f} ms  max {med['max_ms']:.1f} ms   "
                f"(p99 per run {[round(x['p99_ms'], 2) for x in rows]}; threads {threads})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
