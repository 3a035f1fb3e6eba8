"""Does the TUI disturb what it measures? Same sweep headless and inside the app, one run.

    .venv/bin/python tests/benchmarks/ui_overhead.py [--model builtin:mlp] [--repeat 2] [--keys-only]
    .venv/bin/python tests/benchmarks/ui_overhead.py --smoke    # does it still run? (seconds; no figures)

Baseline: the sweep pipeline's closed-loop stage run directly in this process
(``SweepPipeline(request).sweep()``, what ``tuner bench`` does), on the request the TUI's own driver
makes from the same setup. Then the same setup driven by the app (headless Textual, real widgets,
real charts), alternating, ``--repeat`` times each. Prints the best throughput of each mode and their
ratio (target: TUI within 5% of headless), the CPU the UI process itself used during the sweep (the
app runs the sweep in a child process, so this is the UI's own cost: rendering, charts, the host
bars), and the latency of view switches (keys 3 and 2, every 0.5 s) during ``--repeat`` more
sweeps, pooled (target p95 < 100 ms): to the action (the tab switched) and to the next frame drawn
(what a person sees: it includes restyling and laying out the new view). ``--keys-only`` skips the
throughput rounds. ``--smoke`` runs one short round of each on ``builtin:sleep`` (one trial, 0.2 s
windows) to check the benchmark still runs; its figures mean nothing. On a shared, busy host, say
so with any figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the frozen host fakes

from tuner.bench.pipeline import SweepPipeline
from tuner.bench.request import SweepRequest
from tuner.tui.driver import BenchDriver
from tuner.tui.widgets.setup import FormValues


@dataclass(frozen=True)
class Setup:
    """What both modes sweep: the setup form's fields, as the in-app run types them."""

    model: str
    window_s: float
    workers: tuple[int, ...] = (1, 2)
    n_items: int = 8192

    def values(self) -> FormValues:
        return FormValues(
            model=self.model,
            n_items=self.n_items,
            backends=("process",),
            workers=self.workers,
            threads=(1,),
            partitions=(64,),
            budget_s=1000.0,
            max_trials=len(self.workers),
            window_s=self.window_s,
        )

    def fields(self) -> dict[str, str]:
        """The setup form's fields for the same sweep."""
        return {
            "backends": "process",
            "workers": ",".join(str(w) for w in self.workers),
            "threads": "1",
            "partitions": "64",
            "max-trials": str(len(self.workers)),
            "items": str(self.n_items),
            "budget": "1000",
        }


def request_for(setup: Setup) -> SweepRequest:
    """The request the TUI's driver makes from this setup, measured in this process (no UI here)."""
    return replace(BenchDriver(results_path=None).request(setup.values()), own_pids=())


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system  # this process only: the UI and the sweep thread, not the workers


def headless(setup: Setup) -> tuple[float, float, float]:
    c0, t0 = _cpu(), time.perf_counter()
    with SweepPipeline(request_for(setup)) as pipeline:
        results = pipeline.sweep(threading.Event())
    return max(r.throughput for r in results), _cpu() - c0, time.perf_counter() - t0


async def in_app(setup: Setup, press_keys: bool = False) -> tuple[float, float, float, list[tuple[float, float]]]:
    """One sweep inside the app; with ``press_keys``, a view switch every 0.5 s, each timed twice:
    key to action (the tab switched) and key to painted (the first frame drawn after the switch)."""
    from textual.widgets import Input, TabbedContent

    from tuner.tui.app import TunerApp

    app = TunerApp(model=setup.model, window_s=setup.window_s, driver=BenchDriver(results_path=None))
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
        for wid, value in setup.fields().items():
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
    ap.add_argument("--smoke", action="store_true", help="one short round on builtin:sleep: does it run?")
    args = ap.parse_args()
    if args.smoke:
        setup, repeat = Setup("builtin:sleep", 0.2, workers=(1,), n_items=2048), 1
    else:
        setup, repeat = Setup(args.model, args.window), args.repeat
    from tuner.engine.transport import ensure_tracker

    ensure_tracker()  # before Textual captures stderr (see the TUI's app.py)
    t_start = time.perf_counter()
    h_best, a_best, h_cpu, a_cpu, h_wall, a_wall = [], [], [], [], [], []
    for i in range(0 if args.keys_only else repeat):
        b, c, w = headless(setup)
        h_best.append(b), h_cpu.append(c), h_wall.append(w)
        b, c, w, _ = asyncio.run(in_app(setup))
        a_best.append(b), a_cpu.append(c), a_wall.append(w)
        print(
            f"round {i + 1}: headless {h_best[-1]:,.0f} items/s · TUI {a_best[-1]:,.0f} items/s", flush=True
        )
    # Key presses in separate TUI runs (--repeat of them): switching views re-renders whole
    # screens, which would otherwise be counted as the UI's idle cost during a sweep.
    runs = [asyncio.run(in_app(setup, press_keys=True))[3] for _ in range(repeat)]
    workers = " and ".join(f"×{w}" for w in setup.workers)
    print(
        f"\nmodel {setup.model}, {len(setup.workers)} trial(s) (process {workers}, partition 64), "
        f"window {setup.window_s:g} s, {repeat} rounds, {psutil.cpu_count()} logical cores"
    )
    if args.smoke:
        print("smoke run: the figures below show that each part ran, not what the TUI costs")
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
    print(f"\n{time.perf_counter() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
