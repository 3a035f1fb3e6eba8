"""The run view's own sweep, driven by the seeded fake (no processes): restart, a failed start, faults
changed while the sweep's stage is still being prepared."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import RichLog, Static

from tui.conftest import make_app, wait_for
from tui.fakes import FakeDriver, FakeSweep
from tuner.engine.faults import FaultPlan
from tuner.errors import DataError
from tuner.tui.widgets.progress import RunHeader

SIZE = (120, 40)
pytestmark = pytest.mark.timeout(30)


def status(app: Any) -> str:
    return str(app.query_one("#run-status", Static).render())


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


class FailingDriver(FakeDriver):
    def make_sweep(self, values: Any, on_message: Any, host: Any, info: Any) -> tuple[FakeSweep, Any]:
        raise DataError("sample.npy: no such file")


async def test_a_sweep_that_cannot_start_keeps_saying_why() -> None:
    app = make_app(driver=FailingDriver())
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("s")
        await wait_for(pilot, lambda: "✗" in status(app), what="the failure in the header")
        await wait_for(pilot, lambda: not app.running, what="the worker to end")
        app.query_one(RunHeader).tick()  # the header's clock ticks every second: it must not cover it
        assert status(app) == "✗ sample.npy: no such file"
        assert not app.query_one("#start").disabled


class SlowStartDriver(FakeDriver):
    """Prepares its stage only when ``ready`` is set (a real one loads the model in a child first)."""

    def __init__(self) -> None:
        super().__init__(n_trials=3)
        self.ready = threading.Event()

    def make_sweep(self, values: Any, on_message: Any, host: Any, info: Any) -> tuple[FakeSweep, Any]:
        self.ready.wait(10)
        return super().make_sweep(values, on_message, host, info)


async def test_faults_changed_while_the_sweep_is_starting_reach_it() -> None:
    driver = SlowStartDriver()
    app = make_app(driver=driver)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("s")
        await wait_for(pilot, lambda: app.running, what="the sweep's worker")
        assert app.sweep is None
        plan = FaultPlan(crash=0.1)
        app.apply_faults(plan)
        driver.ready.set()
        await wait_for(pilot, lambda: driver.sweeps and plan in driver.sweeps[0].fault_changes,
                       what="the plan to reach the sweep")  # fmt: skip
        await pilot.press("q")
