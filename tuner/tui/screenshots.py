"""Regenerate ``screenshots/*.svg``: every screen during a real sweep of a built-in model.

    python -m tuner.tui.screenshots [--model builtin:mlp] [--out screenshots]

Runs the real app headless (real benchmark, real worker processes) at 120x40, with faults injected
from the third trial so the event log has something to say, and saves: setup, run (mid-sweep),
results (after stopping), help, the fault dialog, the online view (mid-search), the run view at
80x24 and results in light theme.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from textual.widgets import Input


async def _wait(pilot: Any, cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the sweep")
        await pilot.pause(0.1)


async def shoot(model: str, out: Path, size: tuple[int, int]) -> None:
    """Run one sweep and save the screens (``size`` is the terminal)."""
    from tuner.tui.app import TunerApp
    from tuner.tui.driver import BenchDriver
    from tuner.tui.widgets.charts import ThroughputChart

    small = size[0] < 100
    app = TunerApp(model=model, window_s=0.5, budget_s=120, driver=BenchDriver(results_path=None))
    tag = "-80x24" if small else ""
    async with app.run_test(size=size) as pilot:
        await _wait(pilot, lambda: app.model_info is not None and app.host is not None, 30)
        for wid, value in (
            ("backends", "process"),
            ("workers", "1-2"),
            ("threads", "1-2"),
            ("partitions", "64,256"),
        ):
            app.query_one(f"#{wid}", Input).value = value
        await pilot.pause()
        if not small:
            app.save_screenshot(str(out / "setup.svg"))
        await pilot.press("s")
        await _wait(pilot, lambda: len(app.results) >= 2, 120)
        if not small:
            await pilot.press("f")
            await pilot.pause()
            app.screen.query_one("#rate-crash", Input).value = "0.02"
            app.screen.query_one("#rate-hang", Input).value = "0.005"
            app.save_screenshot(str(out / "faults.svg"))
            await pilot.press("enter")
        # Mid-sweep, on the run view: the small terminal takes its picture a trial earlier, before
        # a short sweep can end (which switches to the results view by itself).
        need = 2 if small else 3
        await _wait(
            pilot,
            lambda: len(app.results) >= need and len(app.query_one(ThroughputChart).points) >= 4,
            120,
        )
        await pilot.press("2")
        await pilot.pause(0.6)  # one chart refresh period
        if not app.running:
            raise SystemExit("the sweep ended before the run view's picture: rerun (the host was slow?)")
        app.save_screenshot(str(out / f"run{tag}.svg"))
        if small:
            await pilot.press("q")
            return
        await pilot.press("question_mark")
        await pilot.pause()
        app.save_screenshot(str(out / "help.svg"))
        await pilot.press("escape")
        await pilot.press("x")
        await _wait(pilot, lambda: not app.running and app.recommendation is not None, 30)
        await pilot.press("3")
        await pilot.pause()
        app.save_screenshot(str(out / "results.svg"))
        await _online(app, pilot, out)
        await pilot.press("t")
        await pilot.pause()
        app.save_screenshot(str(out / "results-light.svg"))
        await pilot.press("q")


async def _online(app: Any, pilot: Any, out: Path) -> None:
    """The Online view mid-search: a few steps measured, the running one live, then stopped."""
    from tuner.tui.widgets.online import OnlineStepsTable

    app.online_step_s = 1.0
    await pilot.press("4")
    app.query_one("#online-p99", Input).value = "50"
    app.query_one("#plan-rate", Input).value = "20000"
    await pilot.pause()
    app.action_online_start()
    await _wait(pilot, lambda: app.query_one(OnlineStepsTable).row_count >= 4, 120)
    await pilot.pause(0.6)  # one chart refresh period
    app.save_screenshot(str(out / "online.svg"))
    app.action_online_stop()
    await _wait(pilot, lambda: not app.online_running, 30)
    await pilot.press("3")
    await pilot.pause()


def main() -> None:
    ap = argparse.ArgumentParser(description="Regenerate the TUI screenshots from a real sweep.")
    ap.add_argument("--model", default="builtin:mlp")
    ap.add_argument("--out", type=Path, default=Path("screenshots"))
    args = ap.parse_args()
    from tuner.engine.transport import ensure_tracker

    ensure_tracker()  # before Textual captures stderr
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(args.model, args.out, (120, 40)))
    asyncio.run(shoot(args.model, args.out, (80, 24)))
    print("\n".join(str(p) for p in sorted(args.out.glob("*.svg"))))


if __name__ == "__main__":
    main()
