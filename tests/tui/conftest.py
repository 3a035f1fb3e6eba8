"""Fixtures for the TUI tests: an app wired to frozen host data, and a condition waiter."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui.fakes import FROZEN_HOST, fake_validator, fixed_clock, frozen_sampler
from tuner.tui.app import TunerApp


def make_app(**kw: Any) -> TunerApp:
    """An app with a frozen host and load and a fixed clock: what snapshots need."""
    defaults: dict[str, Any] = dict(
        host=FROZEN_HOST, sampler=frozen_sampler, validator=fake_validator, clock=fixed_clock
    )
    defaults.update(kw)
    return TunerApp(**defaults)


async def wait_for(
    pilot: Any,
    cond: Callable[[], bool],
    timeout: float = 20.0,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> None:
    """Let the app run until ``cond()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        await pilot.pause(0.05)


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    return tmp_path / "sweep.jsonl"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (no asyncio plugin is installed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None
