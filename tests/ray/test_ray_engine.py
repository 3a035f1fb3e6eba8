"""The ray backend on a real 3-node cluster on loopback (tests/ray/conftest.py): the engine's
guarantees hold with actors as workers — outputs equal a local run, a killed actor or a lost node
costs one attempt and no item, resize under load, placement, and nothing left at the end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tuner.engine import Engine, EngineConfig
from tuner.engine import events as ev

pytestmark = [pytest.mark.ray]


def run(model: Any, items: Any, size: int, events: list[Any] | None = None, **cfg: Any) -> list[Any]:
    with Engine(model, EngineConfig(**cfg), on_event=None if events is None else events.append) as eng:
        return list(eng.map(items, size))


@pytest.mark.timeout(120)
def test_outputs_equal_a_local_run(ray_cluster: Any) -> None:
    x = np.random.default_rng(0).standard_normal((600, 256)).astype(np.float32)
    local = run("builtin:mlp", x, 50, backend="thread", workers=1)
    events: list[Any] = []
    remote = run("builtin:mlp", x, 50, events, backend="ray", workers=3, threads_per_worker=1)
    assert len(remote) == len(local) == 600
    np.testing.assert_allclose(np.asarray(remote), np.asarray(local), rtol=1e-5, atol=1e-5)
    started = [e for e in events if isinstance(e, ev.WorkerStarted)]
    assert len(started) == 3
    # SPREAD: three actors on three nodes, each named in its WorkerStarted event
    assert len({e.node for e in started}) == 3
    assert all(e.pid > 0 for e in started)
