"""The autoscaler: load rises and falls, workers go min -> max -> min, nothing lost or duplicated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tuner.engine import events as ev
from tuner.runtime import AutoscaleSettings, Runtime

from .helpers import model_spec


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds (checked every 10 ms), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.mark.timeout(60)
def test_workers_follow_load_up_then_down_within_bounds() -> None:
    resized: list[ev.Resized] = []
    settings = AutoscaleSettings(
        min_workers=1,
        max_workers=3,
        target_backlog_per_worker=2.0,
        upscale_delay_s=0.05,
        downscale_delay_s=0.4,
        interval_s=0.02,
    )
    items = list(range(4000))
    outputs: list[int] = []
    with Runtime(
        model_spec("slow_double"),
        backend="thread",
        workers=1,
        partition_size=8,
        autoscale=settings,
        on_event=lambda e: resized.append(e) if isinstance(e, ev.Resized) else None,
    ) as rt:
        assert rt.workers == 1

        # Load rises: a large map keeps many partitions queued per worker.
        consumer = threading.Thread(target=lambda: outputs.extend(rt.map(items)))
        consumer.start()
        wait_for(lambda: rt.workers == 3, 20, "scale-up to max_workers")
        consumer.join(30)
        assert not consumer.is_alive()

        # Load falls: idle, so after the stabilisation window the pool returns to min_workers.
        wait_for(lambda: rt.workers == 1, 20, "scale-down to min_workers")
        decisions = rt.stats().scaling

    assert outputs == [x * 2 for x in items], "every item returned exactly once, in order"
    assert decisions and decisions[0].new > decisions[0].old and decisions[-1].new == 1
    for d in decisions:
        assert 1 <= d.new <= 3 and d.reason
        assert "backlog" in d.reason or "p99" in d.reason
    downs = [d for d in decisions if d.new < d.old]
    assert downs and all("0.4 s" in d.reason for d in downs), "scale-down names its stabilisation window"
    assert [(r.old, r.new) for r in resized] == [(d.old, d.new) for d in decisions]


@pytest.mark.timeout(30)
def test_scale_down_waits_for_the_stabilisation_window() -> None:
    """A lull shorter than downscale_delay_s never removes a worker; a longer one does, once."""
    settings = AutoscaleSettings(min_workers=1, max_workers=2, downscale_delay_s=10.0, interval_s=60.0)
    rt = Runtime(model_spec("slow_double"), backend="thread", workers=2, autoscale=settings)
    with rt:  # interval 60 s: the thread never ticks; the test drives the ticks with its own clock
        t0 = 1000.0
        for k in range(10):
            assert rt._autoscale_tick(t0 + k) is None  # idle, but not for 10 s yet
        assert rt.workers == 2
        d = rt._autoscale_tick(t0 + 10.0)
        assert d is not None and (d.old, d.new) == (2, 1) and rt.workers == 1
        assert rt._autoscale_tick(t0 + 30.0) is None  # at min_workers: nothing below it


@pytest.mark.timeout(30)
def test_p99_over_target_with_busy_workers_scales_up() -> None:
    settings = AutoscaleSettings(
        min_workers=1, max_workers=2, target_backlog_per_worker=1000.0, target_p99_ms=1.0, interval_s=60.0
    )
    with Runtime(
        model_spec("slow_double"), backend="thread", workers=1, partition_size=4, autoscale=settings
    ) as rt:
        list(rt.map(range(40)))  # 5 ms partitions: p99 well above 1 ms
        futures = [rt.submit(i) for i in range(64)]  # keep the worker busy
        d = rt._autoscale_tick(time.perf_counter())
        assert d is not None and d.new == 2 and "p99" in d.reason
        assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(64)]
