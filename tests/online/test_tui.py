"""The TUI's Online view: fed seeded messages (fast), and once through the real online search (a child
process, the same path as the closed-loop sweep). Async bodies run in asyncio.run: the async hook of
tests/tui/conftest.py does not reach this folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static
from tui.conftest import make_app, wait_for
from tui.fakes import demo_messages, feed

from online.test_search import fake_step
from tuner.bench.online.messages import (
    CandidateFinished,
    CandidateStarted,
    OnlineFinished,
    StepFinished,
    StepProgress,
)
from tuner.bench.online.search import CandidateResult, engine_key
from tuner.bench.online.sweep import OnlineOutcome, summarize
from tuner.bench.recommend import recommend
from tuner.bench.request import OnlineRequest
from tuner.bench.types import Objective, TrialConfig, TrialResult
from tuner.tui.driver import BenchDriver
from tuner.tui.messages import OnlineResults, SweepBatch, SweepResults
from tuner.tui.widgets.online import OnlineCurveChart, OnlineLiveChart, OnlinePane, OnlineStepsTable
from tuner.tui.widgets.setup import FormValues

SIZE = (120, 40)


def online_messages(capacity: float = 1000.0) -> tuple[list[Any], OnlineOutcome]:
    cand = TrialConfig("process", 2, 1, 64, max_batch_size=64, max_batch_delay_s=0.002)
    rates = [500.0, 1000.0, 2000.0, 1414.0, 1189.0]
    steps = [fake_step(r, capacity) for r in rates]
    msgs: list[Any] = [CandidateStarted(0, cand, 1)]
    for i, s in enumerate(steps):
        msgs += [
            StepProgress(0, i, t, s.rate, int(s.rate * t), int(s.rate * t) - 3, 4.0, 9.0, 12)
            for t in (0.25, 0.5)
        ]
        msgs.append(StepFinished(0, i, s))
    result = CandidateResult(
        cand, steps=steps, stop_reason="resolved within 5%", closed_loop_throughput=3000.0
    )
    msgs += [CandidateFinished(0, result), OnlineFinished([result], False, 12.0)]
    spec = OnlineRequest(objective_ms=50.0)
    configs = [(TrialConfig("process", 2, 1, 64), 3000.0)]
    return msgs, OnlineOutcome(spec, configs, [result], summarize([result], spec), 12.0)


@pytest.mark.timeout(60)
def test_the_online_view_shows_steps_verdicts_the_knee_and_a_plan() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await feed(app, pilot, demo_messages(4))
            await pilot.press("4")
            assert app.query_one("#tabs").active == "online"
            msgs, outcome = online_messages()
            app.query_one(OnlinePane).post_message(SweepBatch(msgs))
            table = app.query_one(OnlineStepsTable)
            status_text = lambda: str(app.query_one("#online-status", Static).render())  # noqa: E731
            await wait_for(pilot, lambda: "online search finished" in status_text(), what="the batch shown")
            assert table.row_count == 5
            verdicts = [str(table.get_row_at(i)[5]) for i in range(5)]
            assert verdicts[:2] == ["✓ sustainable", "✓ sustainable"] and verdicts[2].startswith(
                "✗ queue growing"
            )
            curve = app.query_one(OnlineCurveChart)
            assert curve.knee == 1000.0 and curve.objective_ms == 50.0 and len(curve.steps) == 5
            assert app.query_one(OnlineLiveChart).key == (0, 4)
            status = str(app.query_one("#online-status", Static).render())
            assert "online search finished: 1 candidates" in status
            app.post_message(OnlineResults(outcome))
            await wait_for(pilot, lambda: "sustains" in status_text(), what="the outcome", detail=status_text)
            assert "sustains 1.00k requests/s" in status_text()
            plan_text = lambda: str(app.query_one("#plan-text", Static).render())  # noqa: E731
            app.query_one("#plan-rate", Input).value = "5000"
            await wait_for(pilot, lambda: "hosts like this one" in plan_text(), what="the plan", detail=plan_text)
            plan = plan_text()
            # 1000/s per host, 30% headroom: 700/s planned → 8 hosts of 2 workers.
            assert "8 hosts like this one × 2 workers = 16 workers" in plan, plan
            app.query_one("#plan-rate", Input).value = "0"
            await wait_for(pilot, lambda: "out of range" in plan_text(), what="the refusal", detail=plan_text)

    asyncio.run(body())


@pytest.mark.timeout(60)
def test_the_curve_survives_steps_all_far_over_the_objective() -> None:
    """Every p99 over 4× the objective clips off the chart: the view still draws (plotext's legend
    raised IndexError for a labelled line with no point left, and the app died with it)."""

    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            pane = app.query_one(OnlinePane)
            pane.reset(10.0)  # p99 objective 10 ms: the chart clips at 40 ms, every step's p99 is 80
            cand = TrialConfig("process", 2, 1, 64, max_batch_size=64, max_batch_delay_s=0.002)
            steps = [StepFinished(0, i, fake_step(r, capacity=1.0)) for i, r in enumerate((500.0, 1000.0))]
            pane.post_message(SweepBatch([CandidateStarted(0, cand, 1), *steps]))
            await wait_for(pilot, lambda: pane.query_one(OnlineStepsTable).row_count == 2, what="the steps")
            app.flush_charts()
            await pilot.pause()
            curve = app.query_one(OnlineCurveChart)
            assert len(curve.steps) == 2 and not any(s.sustainable for s in curve.steps)
            assert "p50" in str(curve.render()) and "p99" not in str(curve.render())

    asyncio.run(body())


@pytest.mark.timeout(60)
def test_start_online_needs_a_finished_sweep() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            await pilot.click("#online-start")
            await pilot.pause()
            assert app.online_outcome is None and not app.online_running
            assert "no online search yet" in str(app.query_one("#online-status", Static).render())

    asyncio.run(body())


def _sleep_trial(config: TrialConfig, throughput: float) -> TrialResult:
    return TrialResult(
        config=config, throughput=throughput, throughput_ci=(throughput, throughput), latency_ms={"p99": 5.0},
        latency_ci_ms={}, service_ms={"p999": 3.0}, cpu_share=0.2, peak_rss_mb={"per_worker": 50.0, "total": 50.0},
        stable=True, windows=[throughput] * 3, warmup_s=0.1, cold_start_s=0.01, measured_s=0.6, items=100,
    )  # fmt: skip


@pytest.mark.timeout(150)
def test_a_real_online_search_from_the_view(tmp_path: Path) -> None:
    """The real driver: the online sweep in a child process, its messages through the relay."""

    async def body() -> None:
        app = make_app(
            model="builtin:sleep", driver=BenchDriver(results_path=tmp_path / "r.jsonl"), validator=None
        )
        app.online_step_s = 0.3
        async with app.run_test(size=SIZE) as pilot:
            trials = [_sleep_trial(TrialConfig("thread", w, 1, 16), 600.0 * w) for w in (1, 2)]
            app.values = FormValues(model="builtin:sleep", n_items=1024, budget_s=8.0)
            app.post_message(SweepResults(recommend(trials, Objective(), None), trials))
            app.results = trials
            await pilot.pause()
            await pilot.press("4")
            app.query_one("#online-p99", Input).value = "100"
            await pilot.click("#online-start")
            await wait_for(pilot, lambda: app.online_running, timeout=10, what="the online worker")
            await wait_for(pilot, lambda: app.query_one(OnlineStepsTable).row_count > 0, timeout=60,
                           what="the first step in the table")  # fmt: skip
            await wait_for(pilot, lambda: app.online_outcome is not None, timeout=90, what="the online outcome",
                           detail=lambda: str(app.query_one("#online-status", Static).render()))  # fmt: skip
            outcome = app.online_outcome
            assert outcome.results and engine_key(outcome.results[0].candidate) == ("thread", 2, 1)
            assert outcome.summary.winner is not None
            pane = app.query_one(OnlinePane)
            assert len(pane.results) == len(outcome.results)
            await wait_for(pilot, lambda: not app.online_running, timeout=20, what="the worker to end")
            app.query_one("#plan-rate", Input).value = "100000"
            await pilot.pause()
            assert "hosts like this one" in str(app.query_one("#plan-text", Static).render())

    asyncio.run(body())


def test_online_view_snapshot(snap_compare: Any) -> None:
    """The Online view after a search: curve with objective and knee, live chart, steps, plan."""

    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await app.workers.wait_for_complete()
        await pilot.pause()
        await feed(app, pilot, demo_messages(4))
        await pilot.press("4")
        msgs, outcome = online_messages()
        app.query_one(OnlinePane).post_message(SweepBatch(msgs))
        app.post_message(OnlineResults(outcome))
        await pilot.pause()
        app.query_one("#plan-rate", Input).value = "5000"
        await pilot.pause()
        app.flush_charts()  # the charts' timer, run now: the picture must not race it
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
