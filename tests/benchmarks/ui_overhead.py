"""Does the TUI disturb what it measures? Same sweep headless and inside the app, one run.

    .venv/bin/python tests/benchmarks/ui_overhead.py [--model builtin:mlp] [--repeat 2] [--keys-only]

Baseline: ``Sweep.run`` called directly (what ``tuner bench`` does). Then the same spec driven by
the app (headless Textual, real widgets, real charts), alternating, ``--repeat`` times each.
Prints the best throughput of each mode and their ratio (target: TUI within 5% of headless), the
CPU the UI process itself used during the sweep (the app runs the sweep in a child process, so this
is the UI's own cost: rendering, charts, the host bars), and the latency of view switches (keys 3
and 2, every 0.5 s) during ``--repeat`` more sweeps, pooled (target p95 < 100 ms): to the action
(the tab switched) and to the next frame drawn (what a person sees: it includes restyling and
laying out the new view). ``--keys-only`` skips the throughput rounds. On a shared, busy host,
say so with any figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the frozen host fakes

from tuner.bench.measure import MeasureSettings
from tuner.bench.search import Space
from tuner.bench.session import Sweep, SweepSpec


def spec_for(model: str, window: float) -> SweepSpec:
    return SweepSpec(
        model=model,
        n_items=8192,
        space=Space(("process",), (1, 2), (1,), (64,)),
        budget_s=None,
        max_trials=2,
        settings=MeasureSettings(window_s=window),
    )


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system  # this process only: the UI and the sweep thread, not the workers


def headless(model: str, window: float) -> tuple[float, float, float]:
    sweep = Sweep(spec_for(model, window))
    c0, t0 = _cpu(), time.perf_counter()
    results = sweep.run(threading.Event())
    return max(r.throughput for r in results), _cpu() - c0, time.perf_counter() - t0


async def in_app(
    model: str, window: float, press_keys: bool = False
) -> tuple[float, float, float, list[tuple[float, float]]]:
    """One sweep inside the app; with ``press_keys``, a view switch every 0.5 s, each timed twice:
    key to action (the tab switched) and key to painted (the first frame drawn after the switch)."""
    from textual.widgets import Input, TabbedContent

    from tuner.tui.app import TunerApp
    from tuner.tui.driver import BenchDriver

    app = TunerApp(model=model, window_s=window, driver=BenchDriver(results_path=None))
    latencies: list[tuple[float, float]] = []
    frames: list[float] = []
    display = app._display

    def timed_display(*args: object, **kwargs: object) -> object:
        # the app hands each frame to the driver here (headless: drawn, not written)
        frames.append(time.perf_counter())
        return display(*args, **kwargs)

    app._display = timed_display  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        for wid, value in (
            ("backends", "process"),
            ("workers", "1,2"),
            ("threads", "1"),
            ("partitions", "64"),
            ("max-trials", "2"),
            ("items", "8192"),
            ("budget", "1000"),
        ):
            app.query_one(f"#{wid}", Input).value = value
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        c0, t0 = _cpu(), time.perf_counter()
        await pilot.press("s")
        keys = ["3", "2"]
        n = 0
        while app.recommendation is None or app.running:
            await asyncio.sleep(0.5)  # a person glancing at the screen, pressing a key now and then
            if press_keys and app.sweep is not None and app.running:
                # Polled every 2 ms from the app's own loop: the action has run when the tab
                # switched; the view is on screen when the next frame after that is drawn.
                want = {"3": "results", "2": "run"}[keys[n % 2]]
                k0 = time.perf_counter()
                app.simulate_key(keys[n % 2])
                while tabs.active != want and time.perf_counter() - k0 < 5:
                    await asyncio.sleep(0.002)
                k1 = time.perf_counter()
                while not (frames and frames[-1] >= k1) and time.perf_counter() - k0 < 5:
                    await asyncio.sleep(0.002)
                latencies.append((k1 - k0, max(frames[-1], k1) - k0))
                n += 1
            if time.perf_counter() - t0 > 300:
                raise SystemExit("the sweep inside the app did not finish in 300 s")
        cpu, wall = _cpu() - c0, time.perf_counter() - t0
        best = max(r.throughput for r in app.results)
        await pilot.press("q")
    return best, cpu, wall, latencies


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:mlp")
    ap.add_argument("--window", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keys-only", action="store_true", help="only the key-press runs")
    args = ap.parse_args()
    from tuner.engine.transport import ensure_tracker

    ensure_tracker()  # before Textual captures stderr (see the TUI's app.py)
    h_best, a_best, h_cpu, a_cpu, h_wall, a_wall = [], [], [], [], [], []
    for i in range(0 if args.keys_only else args.repeat):
        b, c, w = headless(args.model, args.window)
        h_best.append(b), h_cpu.append(c), h_wall.append(w)
        b, c, w, _ = asyncio.run(in_app(args.model, args.window))
        a_best.append(b), a_cpu.append(c), a_wall.append(w)
        print(
            f"round {i + 1}: headless {h_best[-1]:,.0f} items/s · TUI {a_best[-1]:,.0f} items/s", flush=True
        )
    # Key presses in separate TUI runs (--repeat of them): switching views re-renders whole
    # screens, which would otherwise be counted as the UI's idle cost during a sweep.
    runs = [asyncio.run(in_app(args.model, args.window, press_keys=True))[3] for _ in range(args.repeat)]
    print(
        f"\nmodel {args.model}, 2 trials (process ×1 and ×2, partition 64), window {args.window:g} s, "
        f"{args.repeat} rounds, {psutil.cpu_count()} logical cores"
    )
    if h_best:
        hb, ab = max(h_best), max(a_best)
        ui_cpu = statistics.mean(a_cpu) / statistics.mean(a_wall)
        print(
            f"best throughput   headless {hb:,.0f} items/s   TUI {ab:,.0f} items/s   "
            f"ratio {ab / hb:.3f} ({(ab / hb - 1) * 100:+.1f}%; target within 5%)"
        )
        print(
            f"CPU during the sweep: headless sweeping process {statistics.mean(h_cpu) / statistics.mean(h_wall) * 100:.1f}% "
            f"of a core; the TUI's own process (sweep in a child) {ui_cpu * 100:.1f}% of a core"
        )
    for i, what in ((0, "key to action (tab switched)"), (1, "key to painted (next frame drawn)")):
        per_run = [[x[i] * 1000 for x in lat] for lat in runs if lat]
        if not per_run:
            continue
        pooled = sorted(x for run in per_run for x in run)
        p95s = ", ".join(f"{_p95(r):.1f}" for r in per_run)
        print(
            f"key presses during the sweep, {what}: {len(pooled)} in {len(per_run)} runs, "
            f"median {statistics.median(pooled):.1f} ms, p95 {_p95(pooled):.1f} ms "
            f"(per run {p95s}; median of runs {statistics.median(_p95(r) for r in per_run):.1f}), "
            f"max {pooled[-1]:.1f} ms (target < 100 ms)"
        )


if __name__ == "__main__":
    main()
