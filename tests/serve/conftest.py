"""Fixtures of the server tests: this host (probed once), and profiles for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.hardware import Host, probe

from .helpers import model_spec, write_profile


@pytest.fixture(scope="session")
def this_host() -> Host:
    """This machine, probed once per session (probing takes a few hundred ms)."""
    return probe()


@pytest.fixture
def mlp_profile(tmp_path: Path, this_host: Host) -> Path:
    """builtin:mlp (float32[256] rows), 2 thread workers, partitions of 64."""
    return write_profile(
        tmp_path / "mlp.yaml", this_host, spec="builtin:mlp", item="float32[256]", partition_size=64
    )


@pytest.fixture
def int_profile(tmp_path: Path, this_host: Host) -> Path:
    """Doubles int64 items, fails on a negative one; 2 thread workers, max_pending 64."""
    return write_profile(
        tmp_path / "ints.yaml", this_host, spec=model_spec("double_or_fail"), item="int64", max_pending=64
    )
