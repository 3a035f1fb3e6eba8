"""The run view's own sweep, driven by the seeded fake (no processes)."""

from __future__ import annotations

import pytest
from textual.widgets import RichLog

from tui.conftest import make_app, wait_for
from tui.fakes import FakeDriver

SIZE = (120, 40)
pytestmark = pytest.mark.timeout(30)


async def test_restart_stops_the_sweep_and_starts_another() -> None:
    driver = FakeDriver(n_trials=200, delay_s=0.02)
    app = make_app(driver=driver)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("s")
        await wait_for(pilot, lambda: len(app.results) >= 1, what="a finished trial")
        await pilot.press("r")
        await wait_for(pilot, lambda: len(driver.sweeps) == 2 and app.running, what="the second sweep")
        # The view starts over with the second sweep: its log opens with it.
        first = app.query_one("#events", RichLog).lines[0].text
        assert "sweep started: builtin:mlp" in first, first
        await pilot.press("q")
