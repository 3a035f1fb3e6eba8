"""Snapshot tests of every screen, deterministic: frozen host and load, seeded sweep data, fixed size.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and
look at the report before committing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from textual.widgets import Input

from tui.conftest import make_app
from tui.fakes import FROZEN_HOST, FakeInfo, demo_messages, feed
from tuner.engine.faults import FaultPlan

SIZE = (120, 40)
pytestmark = pytest.mark.timeout(60)


async def _settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_setup(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_settle)


def test_setup_bad_model(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        pilot.app.query_one("#model", Input).value = "builtin:nope"
        await pilot.pause(0.6)  # the field's debounce, then the check runs in a worker
        await _settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


async def _mid_sweep(pilot: Any) -> None:
    await _settle(pilot)
    await pilot.press("2")
    await feed(pilot.app, pilot, demo_messages(4, faults=FaultPlan(crash=0.05, hang=0.01), finished=False))
    await pilot.pause()
    # Tables re-lay out on the resize that follows the first layout; let it land before the picture.
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()


def test_run_mid_sweep(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_mid_sweep)


async def test_run_at_80x24_stays_readable() -> None:
    """At 80x24 (a snapshot here was not byte-stable, so this checks what a person reads instead)."""
    from tuner.tui.widgets.trials import TrialsTable

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _mid_sweep(pilot)
        table = app.query_one(TrialsTable)
        assert table.row_count == 4 + 2  # and the default deployment's two
        label = str(table.get_row_at(0)[1])
        assert label.strip().lstrip("★ ").startswith(("inl×", "proc×", "thr×")), label  # short labels fit
        assert all(c.width >= len(str(c.label)) for c in table.columns.values())
        assert app.query_one("#chart-compare").display is False  # the third chart gives way
        assert app.query_one("#events").region.width > 20


async def _finished(pilot: Any) -> None:
    await _settle(pilot)
    await pilot.press("2")
    await feed(pilot.app, pilot, demo_messages(6))
    await pilot.press("3")
    await pilot.pause()


def test_results(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_finished)


def test_results_light(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _finished(pilot)
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_faults_dialog(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("f")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_export_dialog(snap_compare: Any) -> None:
    from tuner.bench.request import SweepRequest
    from tuner.tui.screens.export import ExportScreen

    async def run_before(pilot: Any) -> None:
        await _finished(pilot)
        from tuner.bench.profiles import build_profile

        app = pilot.app
        profile = build_profile(
            app.recommendation,
            name="mlp",
            request=SweepRequest(model="builtin:mlp"),
            host=FROZEN_HOST,
            info=FakeInfo("builtin:mlp"),
        )
        # A fixed creation time and tool version: the YAML on screen must not change between runs.
        profile = profile.model_copy(
            update={"created": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "tool_version": "0.1.0"}
        )
        app.push_screen(ExportScreen(profile, app.profiles_dir / "mlp.yaml"))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
