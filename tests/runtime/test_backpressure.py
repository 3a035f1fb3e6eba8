"""Backpressure: in-flight work is bounded by max_pending; past it submit blocks, times out or is refused."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import psutil
import pytest

from tuner.errors import ConfigError, EngineClosed, Overloaded
from tuner.runtime import Runtime

from .helpers import model_spec
from .test_autoscale import wait_for


class Gated:
    """A model that holds every partition until ``release`` is set (a slow model, on cue)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, partition: Any) -> list[Any]:
        self.release.wait(30)
        return [x * 2 for x in partition]


@pytest.mark.timeout(30)
def test_reject_raises_overloaded_at_the_bound_and_recovers() -> None:
    model = Gated()
    with Runtime(
        model, backend="thread", workers=1, partition_size=4, max_pending=8, overload="reject"
    ) as rt:
        futures = [rt.submit(i) for i in range(8)]
        with pytest.raises(Overloaded, match=r"8 items in flight \(max_pending 8\)"):
            rt.submit(8)
        s = rt.stats()
        assert (s.pending, s.max_pending, s.rejected) == (8, 8, 1)
        model.release.set()
        assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(8)]
        wait_for(lambda: rt.stats().pending == 0, 10, "room given back as futures resolve")
        assert rt.submit(9).result(timeout=10) == 18  # room again: accepted


@pytest.mark.timeout(30)
def test_block_waits_for_room_then_proceeds() -> None:
    model = Gated()
    with Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=8) as rt:
        assert rt.settings.overload == "block"  # the default
        futures = [rt.submit(i) for i in range(8)]
        late: list[Any] = []
        producer = threading.Thread(target=lambda: late.append(rt.submit(8)))
        producer.start()
        producer.join(0.3)
        assert producer.is_alive() and not late, "a submit past max_pending blocks"
        assert rt.stats().pending == 8
        model.release.set()
        producer.join(10)
        assert not producer.is_alive() and late
        assert late[0].result(timeout=10) == 16
        assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(8)]


@pytest.mark.timeout(30)
def test_timeout_raises_overloaded_after_the_timeout() -> None:
    model = Gated()
    with Runtime(
        model,
        backend="thread",
        workers=1,
        partition_size=4,
        max_pending=4,
        overload="timeout",
        overload_timeout_s=0.2,
    ) as rt:
        futures = [rt.submit(i) for i in range(4)]
        t0 = time.monotonic()
        with pytest.raises(Overloaded, match=r"for 0\.2 s"):
            rt.submit(4)
        assert time.monotonic() - t0 >= 0.2
        model.release.set()
        assert [f.result(timeout=10) for f in futures] == [0, 2, 4, 6]


@pytest.mark.timeout(30)
def test_a_producer_blocked_at_the_bound_gets_engineclosed_on_close() -> None:
    model = Gated()
    rt = Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=4).start()
    futures = [rt.submit(i) for i in range(4)]
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            rt.submit(99)
        except EngineClosed as e:
            errors.append(e)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()
    closer = threading.Thread(target=rt.close)
    closer.start()
    producer.join(10)
    assert errors and "closed" in str(errors[0])
    model.release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert [f.result(timeout=10) for f in futures] == [0, 2, 4, 6]


@pytest.mark.timeout(60)
def test_map_stays_within_max_pending_alongside_submit() -> None:
    with Runtime(
        model_spec("slow_double"), backend="thread", workers=2, partition_size=8, max_pending=40
    ) as rt:
        seen: list[int] = []
        futures = [rt.submit(-1 - i) for i in range(16)]
        out = []
        for y in rt.map(range(2000)):
            out.append(y)
            if len(out) % 97 == 0:
                seen.append(rt.stats().pending)
        assert out == [x * 2 for x in range(2000)]
        assert [f.result(timeout=10) for f in futures] == [2 * (-1 - i) for i in range(16)]
        assert seen and max(seen) <= 40


@pytest.mark.timeout(120)
def test_a_fast_producer_and_a_slow_model_keep_rss_flat() -> None:
    """50k items of 2 kB each, submitted as fast as Python can; the model serves ~13k items/s.

    Unbounded (before max_pending), every item and its future sat in the runtime's queue: the
    process grew by ~150 MB. Bounded, the producer waits, and RSS stays where the warm-up left it.
    """
    me = psutil.Process()
    n, payload = 50_000, 2048
    done = threading.Semaphore(0)
    with Runtime(
        model_spec("slow_len"), backend="thread", workers=1, partition_size=64, max_pending=1024
    ) as rt:

        def count(_f: Any) -> None:
            done.release()

        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], me.memory_info().rss)

        # Warm-up: the bound filled once, so steady-state allocations are in the baseline.
        for _ in range(4096):
            rt.submit(bytes(payload)).add_done_callback(count)
        for _ in range(4096):
            assert done.acquire(timeout=30)
        gc.collect()
        base = me.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        for _ in range(n):
            rt.submit(bytes(payload)).add_done_callback(count)
            if time.monotonic() - t0 > 60:  # a very slow host: what was submitted is enough
                break
        stop.set()
        sampler.join()
        assert rt.stats().pending <= 1024
    growth_mb = (peak[0] - base) / 1e6
    assert growth_mb < 40, f"RSS grew by {growth_mb:.0f} MB with max_pending=1024"


@pytest.mark.timeout(10)
def test_bad_backpressure_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"max_pending must be an integer >= 1"):
        Runtime("builtin:sleep", backend="thread", max_pending=0)
    with pytest.raises(ConfigError, match="overload 'drop': choose from block, timeout, reject"):
        Runtime("builtin:sleep", backend="thread", overload="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"overload_timeout_s must be a finite number > 0 \(got inf\)"):
        Runtime("builtin:sleep", backend="thread", overload_timeout_s=float("inf"))


@pytest.mark.timeout(30)
def test_a_callback_that_submits_past_the_bound_is_refused_not_deadlocked() -> None:
    """Future callbacks run in the runtime's completer, the thread that frees room: it cannot wait."""
    model = Gated()
    model.release.set()
    seen: list[Any] = []
    with Runtime(model, backend="thread", workers=1, partition_size=2, max_pending=2) as rt:
        chained: list[Any] = []

        def chain(_f: Any) -> None:
            try:
                chained.append(rt.submit(10))  # the room `a` gave back
                chained.append(rt.submit(11))  # full again: would wait forever on its own thread
            except Overloaded as e:
                seen.append(e)

        a = rt.submit(1)
        a.add_done_callback(chain)
        b = rt.submit(2)
        assert b.result(timeout=10) == 4, "the completer went on resolving"
        assert a.result(timeout=10) == 2
        wait_for(lambda: bool(seen), 10, "the second chained submit to be refused")
        assert "a callback run by the runtime cannot wait for room" in str(seen[0])
        assert [f.result(timeout=10) for f in chained] == [20]
