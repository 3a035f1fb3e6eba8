"""Pilot tests of each flow a person goes through, against the real benchmark.

Fast configuration: ``builtin:sleep`` (latency-bound, 2 ms per partition), thread or process
backend, 1–2 workers, one partition size, 0.2 s windows, at most 2 trials. Waits are on
conditions with deadlines, never blind sleeps. The autouse ``no_leaks`` fixture fails any test
that leaves a worker process or shared-memory segment behind.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, RichLog, Static

from tui.conftest import make_app, wait_for
from tui.fakes import CONFIGS, FIXED_CLOCK, trial_messages
from tuner.profile import load_profile
from tuner.tui.app import TunerApp
from tuner.tui.driver import BenchDriver
from tuner.tui.messages import SweepBatch
from tuner.tui.widgets.charts import ComparisonChart, LatencyChart, ThroughputChart
from tuner.tui.widgets.run import RunPane
from tuner.tui.widgets.setup import SetupForm
from tuner.tui.widgets.trials import TrialsTable

SIZE = (120, 40)


def real_app(results: Path, **kw: Any) -> TunerApp:
    """The real driver with a frozen host line and load bars (nothing else is faked)."""
    return make_app(
        model="builtin:sleep",
        window_s=0.2,
        budget_s=30,
        driver=BenchDriver(results_path=results),
        host=None,
        validator=None,
        **kw,
    )


async def fill_setup(
    pilot: Any,
    *,
    backends: str = "thread",
    workers: str = "1-2",
    max_trials: str = "2",
    partitions: str = "64",
) -> None:
    app = pilot.app
    for wid, value in (
        ("backends", backends),
        ("workers", workers),
        ("threads", "1"),
        ("partitions", partitions),
        ("max-trials", max_trials),
        ("items", "4096"),
    ):
        app.query_one(f"#{wid}", Input).value = value
    await pilot.pause()


def log_text(app: TunerApp) -> str:
    # Wrapped lines keep their trailing space, so joining them gives the text as written.
    return "".join(line.text for line in app.query_one("#events", RichLog).lines)


@pytest.mark.timeout(60)
async def test_sweep_fills_charts_table_results_then_export(results_path: Path, tmp_path: Path) -> None:
    app = real_app(results_path, profiles_dir=tmp_path / "profiles")
    async with app.run_test(size=SIZE) as pilot:
        await fill_setup(pilot)
        await pilot.press("s")
        await wait_for(
            pilot, lambda: app.query_one(ThroughputChart).points, what="the first window on the chart"
        )
        assert app.query_one("#tabs").active == "run"
        assert app.running
        await wait_for(pilot, lambda: app.recommendation is not None, timeout=40, what="the sweep to finish")
        table = app.query_one(TrialsTable)
        assert table.row_count == 2 + 2  # the setup's two, and the default deployment twice
        # the latency chart holds the last trial's windows, its three lines in order
        windows = [p for p in app.query_one(LatencyChart).points if p.phase == "measuring" and p.p99_ms]
        assert len(windows) >= 3, "a stable trial has at least 3 windows"
        assert all(p.p50_ms <= p.p95_ms <= p.p99_ms for p in windows)
        assert len(app.query_one(ComparisonChart).results) == 2 + 2
        assert app.query_one("#tabs").active == "results"
        words = str(app.query_one("#rec-words", Static).render())
        assert "Recommended:" in words
        # The same JSON-lines file the headless mode writes: one line per finished trial.
        lines = results_path.read_text().splitlines()
        assert len(lines) == 2 + 2 and "config" in json.loads(lines[0])
        # Export: the YAML is shown, the default path is profiles/<name>.yaml, the file loads back.
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.query("#export-yaml"), what="the export dialog")
        assert "recommended:" in app.screen.query_one("#export-yaml").text
        path_input = app.screen.query_one("#export-path", Input)
        assert path_input.value == str(tmp_path / "profiles" / "sleep.yaml")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.screen.query("#export-yaml"), what="the dialog to close")
        profile = load_profile(tmp_path / "profiles" / "sleep.yaml")
        assert profile.model.spec == "builtin:sleep"
        assert f"profile written to {tmp_path / 'profiles' / 'sleep.yaml'}" in log_text(app)
        # Load it back to compare against it.
        await pilot.press("l")
        await pilot.pause()
        app.screen.query_one("#load-path", Input).value = str(tmp_path / "profiles" / "sleep.yaml")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: "this sweep's best" in str(app.query_one("#compare", Static).render()),
            what="the comparison",
        )
        await pilot.press("q")


@pytest.mark.timeout(60)
async def test_stop_keeps_finished_trials_and_leaves_no_worker(results_path: Path) -> None:
    app = real_app(results_path)
    async with app.run_test(size=SIZE) as pilot:
        await fill_setup(pilot, backends="process", max_trials="")
        await pilot.press("s")
        await wait_for(pilot, lambda: len(app.results) >= 1, timeout=40, what="one finished trial")
        await pilot.press("x")
        await wait_for(
            pilot, lambda: not app.query_one("#start", Button).disabled, timeout=10, what="the sweep to stop"
        )
        assert app.interrupted
        assert "stopping" in log_text(app) and "sweep stopped" in log_text(app)
        assert not app.query_one("#start", Button).disabled
        kept = results_path.read_text().splitlines()
        assert len(kept) == len(app.results) >= 1
        await pilot.press("q")
    # no_leaks (autouse) checks that no worker process outlived the stop.


@pytest.mark.timeout(60)
async def test_quit_mid_sweep_stops_the_engine(results_path: Path) -> None:
    app = real_app(results_path)
    async with app.run_test(size=SIZE) as pilot:
        await fill_setup(pilot, backends="process", max_trials="")
        await pilot.press("s")
        await wait_for(pilot, lambda: app.query_one(ThroughputChart).points, timeout=30, what="a window")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, timeout=10, what="the app to exit")
    assert app.return_code == 0


@pytest.mark.timeout(60)
async def test_fault_rate_change_shows_faults_in_the_log(results_path: Path) -> None:
    app = real_app(results_path)
    async with app.run_test(size=SIZE) as pilot:
        await fill_setup(pilot, backends="process", workers="1-2", partitions="32,64,128", max_trials="")
        await pilot.press("s")
        await wait_for(pilot, lambda: app.sweep is not None, timeout=20, what="the sweep to start")
        await pilot.press("f")
        await pilot.pause()
        app.screen.query_one("#rate-crash", Input).value = "0.1"
        await pilot.press("enter")
        await pilot.pause()
        assert "faults set to crash=0.1" in log_text(app)
        await wait_for(
            pilot,
            lambda: "(injected)" in log_text(app),
            timeout=40,
            what="an injected fault in the log",
            detail=lambda: log_text(app),
        )
        assert "crashed" in log_text(app)
        await pilot.press("q")


@pytest.mark.timeout(30)
async def test_bad_model_spec_inline_and_start_disabled() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.query_one("#model", Input).value = "no_such_module_xyz:load"
        await wait_for(pilot, lambda: app.model_error is not None, what="the model check")
        status = str(app.query_one("#model-status", Static).render())
        assert "no_such_module_xyz:load" in status and "✗" in status
        assert app.query_one("#start", Button).disabled
        await pilot.press("escape", "s")
        assert not app.running
        app.query_one("#model", Input).value = "builtin:mlp"
        await wait_for(pilot, lambda: app.model_error is None, what="the model check")
        assert not app.query_one("#start", Button).disabled


@pytest.mark.timeout(30)
async def test_real_validator_message_for_a_bad_spec() -> None:
    from tuner.tui.app import _validate_model

    app = make_app(validator=_validate_model)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#model", Input).value = "builtin:nope"
        await wait_for(pilot, lambda: app.model_error is not None, what="the model check")
        assert "builtin:nope" in app.model_error
        assert app.query_one("#start", Button).disabled


@pytest.mark.timeout(30)
async def test_help_and_palette_open() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("question_mark")
        await pilot.pause()
        assert "tuner — keys" in str(app.screen.query_one("Markdown").source)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


@pytest.mark.timeout(30)
async def test_run_header_shows_no_trial_count_an_adaptive_search_cannot_know() -> None:
    """Issue 13: "trial 1 of ~2" at the start of an adaptive sweep that ran 12 trials. The header
    says how the search ends, and a budget-based ceiling once two trials have shown their length."""
    now = [FIXED_CLOCK]
    app = make_app(budget_s=150, clock=lambda: now[0])
    rng = random.Random(1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.values = app.query_one(SetupForm).read()
        assert app.values.strategy == "adaptive"
        run = app.query_one(RunPane)
        run.begin(app.values, started_at=now[0])

        def header() -> list[str]:
            return str(app.query_one("#run-status", Static).render()).splitlines()

        async def trial(i: int, seconds: float) -> str:
            started, *rest = trial_messages(i, CONFIGS[i], rng, planned=2)  # the strategy's low guess
            run.post_message(SweepBatch([started, rest[0]]))
            await pilot.pause()
            lines = header()
            now[0] += seconds
            run.post_message(SweepBatch(rest[1:]))
            await pilot.pause()
            return "\n".join(lines)

        first = await trial(0, 10.0)
        assert first == (
            f"trial 1 · {CONFIGS[0].label()} · warm-up: workers starting, model loading\n"
            "0s elapsed · ≤ 2m30s left · adaptive: until the budget or no better neighbour"
        )
        second = await trial(1, 10.0)
        assert second.startswith("trial 2 · ") and second.endswith("no better neighbour")
        assert "of ~" not in first + second
        # two trials of 10 s: about 15 fit in the 150 s budget, 130 s of it left
        third = await trial(2, 10.0)
        assert third.splitlines()[1] == (
            "20s elapsed · ≤ 2m10s left · adaptive: until the budget (~15 trials) or no better neighbour"
        )


def test_sweep_outlook_words() -> None:
    from tuner.tui.format import sweep_outlook

    grid = sweep_outlook(
        strategy="grid", planned=12, done=3, trial_s=[8, 10, 12], budget_s=60, elapsed_s=30, max_trials=None
    )
    assert (grid.trial, grid.outlook, grid.left_s, grid.upper_bound) == (
        "trial 4 of 12",
        "about 6 of 12 fit the budget",
        30.0,
        False,
    )
    capped = sweep_outlook(
        strategy="adaptive", planned=2, done=0, trial_s=[], budget_s=150, elapsed_s=0, max_trials=5
    )
    assert (capped.trial, capped.outlook, capped.total) == (
        "trial 1",
        "adaptive: until 5 trials, the budget or no better neighbour",
        None,
    )
    late = sweep_outlook(
        strategy="adaptive", planned=9, done=4, trial_s=[5, 5, 5, 5], budget_s=100, elapsed_s=20, max_trials=6
    )
    assert (late.outlook, late.left_s, late.total) == (
        "adaptive: until 6 trials or no better neighbour",
        10.0,
        6,
    )
