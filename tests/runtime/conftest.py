"""Fixtures of the runtime tests."""

from __future__ import annotations

import pytest

from tuner.hardware import Host, probe


@pytest.fixture(scope="session")
def this_host() -> Host:
    """This machine, probed once per session (probing takes a few hundred ms)."""
    return probe()
