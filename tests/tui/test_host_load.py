"""The TUI and the host around a sweep: the host bar's outside load, discarded windows in the log,
contaminated trials in the table, a profile's recorded load beside this sweep's (issue 12)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import RichLog, Static

from tui.conftest import make_app, wait_for
from tui.fakes import CONFIGS, FROZEN_LOAD, feed, trial_messages
from tuner.bench.types import TrialFinished, WindowMeasured
from tuner.tui.widgets.hostbar import HostPanel, LiveSampler, Load, LoadBars, psutil_sampler
from tuner.tui.widgets.trials import TrialsTable

SIZE = (120, 40)
pytestmark = pytest.mark.timeout(30)
GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "profiles" / "good.yaml"


def bar_text(app: Any) -> str:
    return str(app.query_one(LoadBars).render())


def log_text(app: Any) -> str:
    return "".join(line.text for line in app.query_one("#events", RichLog).lines)


async def test_host_bar_shows_outside_load_and_the_sweeps_figure_while_it_measures() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        assert "outside" in bar_text(app) and " 12%" in bar_text(app)  # the sampler's own figure
        await pilot.press("2")  # the event log writes once it is on screen
        busy = WindowMeasured(
            0, 3.0, "measuring", 1000.0, 1.0, 2.0, 3.0, 0.52, "outside load 52% of 2 cores (limit 25%)"
        )
        await feed(app, pilot, [busy], recommend=False)
        # The bar shows the figure the sweep judged its window by, and the log says what was dropped.
        assert " 52%" in bar_text(app) and " 12%" not in bar_text(app)
        assert "window at 3.0 s discarded, host busy: outside load 52% of 2 cores (limit 25%)" in log_text(
            app
        )


async def test_live_bar_takes_the_sweeps_figure_at_its_next_tick() -> None:
    app = make_app(sampler=psutil_sampler)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.query_one(HostPanel).report_outside(0.873)
        # Not repainted at once (a sweep reports a few times a second); at the next 1 s tick.
        await wait_for(
            pilot, lambda: " 87%" in bar_text(app), timeout=5, what="the sweep's figure on the bar"
        )


async def test_unknown_outside_load_is_a_dash_not_zero() -> None:
    app = make_app(sampler=lambda: Load(FROZEN_LOAD.cores, FROZEN_LOAD.mem_used, FROZEN_LOAD.mem_total))
    async with app.run_test(size=SIZE):
        await app.workers.wait_for_complete()
        assert "outside –" in bar_text(app)


async def test_a_contaminated_trial_is_marked_in_table_and_log() -> None:
    from dataclasses import replace

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("2")
        *msgs, done = trial_messages(0, CONFIGS[0], random.Random(1), 1)
        assert isinstance(done, TrialFinished)
        dirty = replace(done.result, contaminated=True, stable=False, discarded_windows=[0, 1, 2, 3, 4])
        await feed(app, pilot, [*msgs, TrialFinished(0, dirty)], recommend=False)
        table = app.query_one(TrialsTable)
        assert table.row_count == 1
        assert "contaminated" in str(table.get_row_at(0)[4])
        assert "contaminated · 5 busy windows discarded" in log_text(app)
        assert CONFIGS[0].label() in log_text(app)


async def test_a_loaded_profile_says_how_busy_its_host_was() -> None:
    app = make_app(compare_path=GOOD)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = str(app.query_one("#compare", Static).render())
        assert "outside load 3% of 2 cores (1 of 14 windows discarded as busy)" in text


def test_live_sampler_outside_load_needs_two_samples() -> None:
    sample = LiveSampler()
    first, second = sample(), sample()
    assert first.outside is None  # a rate: nothing to say after one reading
    assert second.outside is not None and second.outside >= 0.0
    assert len(second.cores) >= 1 and second.mem_total > 0
