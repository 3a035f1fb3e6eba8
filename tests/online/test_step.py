"""One step of open-loop load through the real runtime: schedule accuracy, no coordinated omission,
and the verdict on an overloaded step. Thread backend (no process start-up); short steps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from online.models import SENTINEL, STALL_S
from tuner.bench.online.schedule import make_schedule
from tuner.bench.online.step import BatchCounter, StepCancelled, judge, queue_trend, run_step
from tuner.models.builtin import SLEEP_PER_ITEM_S, SLEEP_PER_PARTITION_S
from tuner.runtime import Runtime

STALL_MODEL = f"{Path(__file__).resolve().parent / 'models.py'}:stall"


@pytest.mark.timeout(60)
def test_offered_rate_is_within_1_percent_of_2000_per_second_on_builtin_sleep() -> None:
    counter = BatchCounter()
    with Runtime(
        "builtin:sleep", backend="thread", workers=2, partition_size=64, max_batch_delay_ms=2,
        max_pending=100_000, overload="reject", on_event=counter,
    ) as rt:  # fmt: skip
        schedule = make_schedule("constant", 2000, 2.0)
        r = run_step(rt, schedule, list(range(1000)), objective_ms=50, batches=counter)
    assert r.requests == 4000 and r.sent == 4000
    assert abs(r.offered - 2000) / 2000 <= 0.01, r
    assert not r.generator_behind
    assert r.raw is not None
    sent = r.raw.sent_s
    actual = (len(sent) - 1) / (sent[-1] - sent[0])
    assert abs(actual - 2000) / 2000 <= 0.01, f"actual send rate {actual:.1f}/s"
    # Everything sent came back, and the batcher formed partitions of more than one item.
    assert r.completed == 4000 and r.failed == r.rejected == r.unfinished == 0
    assert sum(k * v for k, v in r.batches.items()) == 4000 and max(r.batches) > 1
    assert set(r.latency_ms) == {"p50", "p90", "p95", "p99", "p999"}
    for key, (lo, hi) in r.latency_ci_ms.items():
        assert lo <= r.latency_ms[key] <= hi


@pytest.mark.timeout(60)
def test_a_schedule_far_past_the_sender_ends_with_the_step_not_minutes_later() -> None:
    """500k requests/s for 1 s is far more than one Python sender submits: the step stops sending one
    drain allowance after its end, says the generator fell behind, and leaves the rest unsent."""
    objective_ms = 100.0
    with Runtime(
        "builtin:sleep", backend="thread", workers=2, partition_size=256, max_batch_delay_ms=1,
        max_pending=1_000_000, overload="reject",
    ) as rt:  # fmt: skip
        schedule = make_schedule("constant", 500_000, 1.0)
        t = time.perf_counter()
        r = run_step(rt, schedule, list(range(1000)), objective_ms=objective_ms, drain_timeout_s=5, ci=False)
        took = time.perf_counter() - t
    assert r.requests == 500_000 and 0 < r.sent < r.requests
    assert r.generator_behind and not r.sustainable
    assert any(x.startswith("generator behind") for x in r.reasons), r.reasons
    # the step (1 s), the catch-up allowance (0.1 s), the drain of what was sent, and slack for a
    # loaded host; finishing the whole schedule would take this sender many seconds
    assert took < 1.0 + objective_ms / 1000 + 4.0, took


@pytest.mark.timeout(60)
def test_a_stall_shows_in_the_latency_of_every_request_scheduled_during_it() -> None:
    """wrk2's lesson: a stall of known length, with the sender itself held up by backpressure."""
    rate, duration = 200.0, 1.5
    schedule = make_schedule("constant", rate, duration)
    k = 100  # the request that carries the sentinel, 0.5 s into the step
    items = [1] * len(schedule)
    items[k] = SENTINEL
    # One worker, partitions of one item, at most 4 items in flight, and submit() blocks when full:
    # during the stall the generator itself is blocked (the case a closed-loop tool would hide).
    with Runtime(
        STALL_MODEL, backend="thread", workers=1, partition_size=1, max_batch_delay_ms=0,
        max_pending=4, overload="block",
    ) as rt:  # fmt: skip
        r = run_step(rt, schedule, items, objective_ms=1000, drain_timeout_s=5)
    raw = r.raw
    assert raw is not None and r.completed == len(schedule)
    t_stall = raw.intended_s[k]
    during = (raw.intended_s > t_stall) & (raw.intended_s < t_stall + STALL_S - 0.02)
    assert during.sum() >= 0.9 * rate * (STALL_S - 0.02)
    # Each request scheduled during the stall waited at least until the stall ended.
    owed = t_stall + STALL_S - raw.intended_s[during]
    assert (raw.latency_s[during] >= owed - 0.015).all(), raw.latency_s[during] - owed
    # Measured from the moment they were really sent, most would look fast: that is what is not done.
    from_send = raw.latency_s[during] - (raw.sent_s[during] - raw.intended_s[during])
    assert np.median(from_send) < 0.25 * np.median(raw.latency_s[during])
    # The generator says it fell behind its schedule (k6's dropped_iterations), by about the stall.
    assert r.late >= during.sum() // 2
    assert r.max_lag_ms >= 0.6 * STALL_S * 1000
    # And the stall is in the figures: ~20% of the step's requests were scheduled during it.
    assert r.latency_ms["p90"] >= 0.1 * 1000


@pytest.mark.timeout(60)
def test_a_rate_past_capacity_is_unsustainable_with_the_reasons_said() -> None:
    # One worker, no batching: capacity = 1 / (2 ms + 0.05 ms) ≈ 488 requests/s; offer twice that.
    capacity = 1 / (SLEEP_PER_PARTITION_S + SLEEP_PER_ITEM_S)
    with Runtime(
        "builtin:sleep", backend="thread", workers=1, partition_size=1, max_batch_delay_ms=0,
        max_pending=100_000, overload="reject",
    ) as rt:  # fmt: skip
        r = run_step(rt, make_schedule("constant", 2 * capacity, 1.0), list(range(100)), objective_ms=50)
    assert not r.sustainable
    assert r.queue_growing and any(x.startswith("queue growing") for x in r.reasons)
    assert any(x.startswith("achieved") for x in r.reasons)
    assert any(x.startswith("p99") for x in r.reasons)
    assert 0.5 * capacity <= r.achieved <= 1.05 * capacity
    assert r.unfinished == 0 and r.completed == r.requests  # drained before returning


@pytest.mark.timeout(60)
def test_refused_requests_make_a_step_unsustainable() -> None:
    with Runtime(
        "builtin:sleep", backend="thread", workers=1, partition_size=1, max_batch_delay_ms=0,
        max_pending=8, overload="reject",
    ) as rt:  # fmt: skip
        r = run_step(rt, make_schedule("constant", 1500, 0.5), list(range(100)), objective_ms=1000)
    assert r.rejected > 0 and not r.sustainable
    assert any("refused (Overloaded)" in x for x in r.reasons)
    assert r.completed + r.rejected == r.requests


@pytest.mark.timeout(30)
def test_cancel_stops_a_step_at_once() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with Runtime("builtin:sleep", backend="thread", workers=1, partition_size=8, max_batch_delay_ms=1) as rt:
        t = time.perf_counter()
        with pytest.raises(StepCancelled):
            run_step(
                rt, make_schedule("constant", 100, 20.0), list(range(10)), objective_ms=50, cancel=cancel
            )
        assert time.perf_counter() - t < 2.0


def test_queue_trend_sees_growth_and_not_noise() -> None:
    t = np.linspace(0, 2, 101)
    rng = np.random.default_rng(0)
    flat = list(zip(t, 20 + rng.normal(0, 5, t.size), strict=True))
    slope, se = queue_trend(flat, 1.0)
    assert abs(slope) < 3 * se
    rising = [(x, 20 + 300 * x) for x in t]
    slope, se = queue_trend(rising, 1.0)
    assert slope == pytest.approx(300) and se < 1e-6


def test_judge_names_every_failed_criterion() -> None:
    ok, why = judge(
        rate=1000, offered=1000, achieved=999.5, p99_ms=40, objective_ms=50,
        growing=False, slope=0, rejected=0, failed=0, unfinished=0,
    )  # fmt: skip
    assert ok and why == []
    ok, why = judge(
        rate=1000, offered=950, achieved=900, p99_ms=60, objective_ms=50,
        growing=True, slope=50, rejected=3, failed=1, unfinished=2,
    )  # fmt: skip
    assert not ok
    assert [w.split(" ")[0] for w in why] == ["generator", "achieved", "queue", "p99", "3", "1", "2"]
