from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder test models leave marks in (engmodels._marker); workers find it in their environment,
    which a process engine copies from the caller's when it starts."""
    monkeypatch.setenv("TUNER_TEST_MARKERS", str(tmp_path))
    return tmp_path
