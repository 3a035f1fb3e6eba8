"""The autoscaler: load rises and falls, workers go min -> max -> min, nothing lost or duplicated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tuner.autoscale import AutoscalePolicy
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


@pytest.mark.timeout(10)
def test_scale_down_waits_for_the_stabilisation_window() -> None:
    """A lull shorter than downscale_delay_s never removes a worker; a longer one does, once."""
    policy = AutoscalePolicy(AutoscaleSettings(min_workers=1, max_workers=2, downscale_delay_s=10.0))
    t0 = 1000.0
    for k in range(10):
        assert policy.observe(t0 + k, workers=2, backlog=0) is None  # idle, but not for 10 s yet
    d = policy.observe(t0 + 10.0, workers=2, backlog=0)
    assert d is not None and d.target == 1 and "for 10 s" in d.reason
    assert policy.observe(t0 + 30.0, workers=1, backlog=0) is None  # at min_workers: nothing below it


@pytest.mark.timeout(10)
def test_a_burst_inside_the_window_keeps_the_capacity_it_needed() -> None:
    """Down goes to the most any look in the window wanted, and a burst restarts the window."""
    policy = AutoscalePolicy(
        AutoscaleSettings(min_workers=1, max_workers=4, target_backlog_per_worker=1.0, downscale_delay_s=5.0)
    )
    assert policy.observe(0.0, workers=4, backlog=1) is None  # wants 1
    assert policy.observe(2.0, workers=4, backlog=3) is None  # wants 3
    d = policy.observe(5.0, workers=4, backlog=0)
    assert d is not None and d.target == 3, "to the most wanted in the window, not to the last look"
    assert policy.observe(6.0, workers=3, backlog=0) is None
    assert policy.observe(7.0, workers=3, backlog=9) is not None  # up at once (no upscale delay)


@pytest.mark.timeout(10)
def test_scale_up_waits_for_the_upscale_delay_and_respects_max() -> None:
    policy = AutoscalePolicy(
        AutoscaleSettings(min_workers=1, max_workers=3, target_backlog_per_worker=2.0, upscale_delay_s=1.0)
    )
    assert policy.observe(0.0, workers=1, backlog=40) is None  # the need must last 1 s
    assert policy.observe(0.5, workers=1, backlog=40) is None
    d = policy.observe(1.0, workers=1, backlog=40)
    assert d is not None and d.target == 3 and "backlog 40.0 partitions per worker" in d.reason
    assert policy.observe(5.0, workers=3, backlog=0.5) is None  # a dip resets nothing up, starts down


@pytest.mark.timeout(10)
def test_p99_over_target_with_busy_workers_scales_up() -> None:
    policy = AutoscalePolicy(
        AutoscaleSettings(min_workers=1, max_workers=2, target_backlog_per_worker=1000.0, target_p99_ms=1.0)
    )
    d = policy.observe(0.0, workers=1, backlog=8, p99_ms=5.0)
    assert d is not None and d.target == 2 and "p99 5.0 ms > target 1 ms" in d.reason
    # With an idle worker, more workers would not shorten a partition: no scale-up on p99 alone.
    assert AutoscalePolicy(policy.settings).observe(0.0, workers=2, backlog=1, p99_ms=5.0) is None
    assert AutoscalePolicy(policy.settings).observe(0.0, workers=1, backlog=8, p99_ms=None) is None


@pytest.mark.timeout(30)
def test_p99_from_runtime_stats_drives_a_scale_up() -> None:
    """End to end: the runtime feeds its own p99 to the policy (5 ms partitions vs a 1 ms target)."""
    settings = AutoscaleSettings(
        min_workers=1, max_workers=2, target_backlog_per_worker=1000.0, target_p99_ms=1.0, interval_s=0.05
    )
    with Runtime(
        model_spec("slow_double"), backend="thread", workers=1, partition_size=4, autoscale=settings
    ) as rt:
        futures = [rt.submit(i) for i in range(400)]  # keeps the worker busy for ~0.5 s
        wait_for(lambda: rt.workers == 2, 10, "a p99-driven scale-up")
        assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(400)]
        assert any("p99" in d.reason for d in rt.stats().scaling)
