"""The runtime in an event loop: ``asubmit`` and ``amap`` give what ``submit`` and ``map`` give, resolved
on the caller's loop without blocking it and without a thread per request."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from tuner.engine import Failure
from tuner.errors import ConfigError, EngineClosed, ItemFailed, Overloaded
from tuner.models import factory
from tuner.runtime import Runtime

from .helpers import model_spec
from .test_backpressure import Gated
from .test_guards import _assert_no_phantom_backlog, _scaling_runtime

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
    """Run ``coro`` in a fresh event loop, within ``timeout_s``."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def eventually(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``cond`` on the loop (other tasks run meanwhile) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


async def yield_to_new_tasks() -> None:
    """Let tasks just created run to their first suspension: asyncio runs every ready callback once
    per iteration, in order, so one ``sleep(0)`` is a scheduling step, not a wait for time."""
    await asyncio.sleep(0)


def outcome(f: Future[Any]) -> Any:
    """What a submitted item came to, comparable across runs: its output or its failure's cause."""
    e = f.exception(timeout=10)
    return f.result() if e is None else _failed(e)


def _failed(e: BaseException) -> Any:
    assert isinstance(e, ItemFailed), repr(e)
    return ("failed", e.failure.cause, e.failure.exc_type, e.failure.message)


def _record(y: Any) -> Any:
    return ("failed", y.cause, y.exc_type, y.message) if isinstance(y, Failure) else y


# ------------------------------------------------------------------------------- the same outcomes


@pytest.mark.timeout(30)
def test_asubmit_and_amap_give_what_submit_and_map_give() -> None:
    items = [1, 2, -3, 4, 5, -6, 7] * 6
    with Runtime(
        model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4, max_batch_delay_ms=1
    ) as rt:
        mapped = [_record(y) for y in rt.map(items, on_failure="yield")]
        submitted = [outcome(rt.submit(x)) for x in items]

        async def both() -> tuple[list[Any], list[Any]]:
            amapped = [_record(y) async for y in rt.amap(items, on_failure="yield")]
            got = await asyncio.gather(*(rt.asubmit(x) for x in items), return_exceptions=True)
            return amapped, [_failed(g) if isinstance(g, BaseException) else g for g in got]

        amapped, asubmitted = run(both())
    assert amapped == mapped and asubmitted == submitted
    assert mapped.count(("failed", "exception", "ValueError", "ValueError: negative item -3")) == 6


@pytest.mark.timeout(30)
def test_amap_raises_item_failed_where_map_does_and_keeps_input_order() -> None:
    items = list(range(1000))
    with Runtime(model_spec("slow_double"), backend="thread", workers=3, partition_size=7) as rt:

        async def ordered() -> tuple[list[Any], list[Any]]:
            return [y async for y in rt.amap(items)], [y async for y in rt.amap(iter(items[:50]))]

        assert run(ordered()) == ([x * 2 for x in items], [x * 2 for x in items[:50]])
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4) as rt:

        async def until_failure(got: list[Any]) -> None:
            async for y in rt.amap([1, 2, 3, -4, 5, 6]):
                got.append(y)

        got: list[Any] = []
        with pytest.raises(ItemFailed) as info:
            run(until_failure(got))
        assert got == [2, 4, 6], "outputs before the failed item are delivered first"
        assert info.value.index == 3 and info.value.failure.exc_type == "ValueError"
        with pytest.raises(ConfigError, match="on_failure must be 'raise' or 'yield'"):
            rt.amap(got, on_failure="ignore")  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_amap_batches_gives_what_map_batches_gives() -> None:
    items = [1, 2, -3, 4, 5, -6, 7] * 3
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4) as rt:
        mapped = [[_record(y) for y in b] for b in rt.map_batches(items, on_failure="yield")]

        async def batches() -> list[Any]:
            return [[_record(y) for y in b] async for b in rt.amap_batches(items, on_failure="yield")]

        assert run(batches()) == mapped
    assert [len(b) for b in mapped] == [4, 4, 4, 4, 4, 1]
    assert [y for b in mapped for y in b] == _doubled_or_failed(items)


def _doubled_or_failed(items: list[int]) -> list[Any]:
    return [
        ("failed", "exception", "ValueError", f"ValueError: negative item {x}") if x < 0 else 2 * x
        for x in items
    ]


@pytest.mark.timeout(120)
def test_each_item_exactly_once_under_worker_crashes() -> None:
    items = list(range(400))
    with Runtime(
        model_spec("slow_double"),
        backend="process",
        workers=2,
        partition_size=8,
        retries=8,
        backoff_base_s=0.001,
        backoff_cap_s=0.01,
        faults="crash=0.1,seed=1",
    ) as rt:

        async def both() -> tuple[list[Any], list[Any]]:
            amapped = [y async for y in rt.amap(items)]
            return amapped, list(await asyncio.gather(*(rt.asubmit(x) for x in items)))

        amapped, asubmitted = run(both(), 100)
        s = rt.stats()
    assert amapped == [2 * x for x in items] and asubmitted == [2 * x for x in items]
    assert s.replaced > 0 and s.retries > 0, "crashes were injected and absorbed"
    assert s.items_done == 2 * len(items) and s.items_failed == 0, "no item delivered twice or lost"


# ------------------------------------------------------------------------------- backpressure


@pytest.mark.timeout(30)
def test_reject_raises_overloaded_in_the_coroutine() -> None:
    model = Gated()
    with Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=8, overload="reject") as rt:

        async def main() -> None:
            try:
                held = [asyncio.ensure_future(rt.asubmit(i)) for i in range(8)]
                await eventually(lambda: rt.stats().pending == 8, "8 items in flight")
                with pytest.raises(Overloaded, match=r"8 items in flight \(max_pending 8\)"):
                    await rt.asubmit(8)
            finally:
                model.release.set()
            assert await asyncio.gather(*held) == [2 * i for i in range(8)]
            await eventually(lambda: rt.stats().pending == 0, "room given back")
            assert await rt.asubmit(9) == 18  # room again: accepted

        run(main())
        assert rt.stats().rejected == 1


@pytest.mark.timeout(30)
def test_timeout_raises_overloaded_after_the_timeout() -> None:
    model = Gated()
    with Runtime(
        model, backend="thread", workers=1, partition_size=4, max_pending=4, overload="timeout", overload_timeout_s=0.2
    ) as rt:

        async def main() -> float:
            try:
                held = [asyncio.ensure_future(rt.asubmit(i)) for i in range(4)]
                await eventually(lambda: rt.stats().pending == 4, "4 items in flight")
                t0 = time.monotonic()
                with pytest.raises(Overloaded, match=r"for 0\.2 s"):
                    await rt.asubmit(4)
                waited = time.monotonic() - t0
            finally:
                model.release.set()
            assert await asyncio.gather(*held) == [0, 2, 4, 6]
            return waited

        assert run(main()) >= 0.2
        assert rt.stats().rejected == 1 and rt.stats().pending == 0


@pytest.mark.timeout(30)
def test_block_awaits_room_while_the_loop_keeps_ticking() -> None:
    """A timer every 10 ms keeps firing on time while an asubmit waits for room."""
    model = Gated()
    with Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=4) as rt:

        async def main() -> list[float]:
            try:
                held = [asyncio.ensure_future(rt.asubmit(i)) for i in range(4)]
                await eventually(lambda: rt.stats().pending == 4, "4 items in flight")
                late = asyncio.ensure_future(rt.asubmit(4))
                lags = ticking()
                await eventually(lambda: len(lags) >= 30, "30 ticks")  # ~0.3 s of waiting for room
                assert not late.done(), "the fifth item waits for room"
            finally:
                model.release.set()
            assert await late == 8 and await asyncio.gather(*held) == [0, 2, 4, 6]
            return list(lags)

        lags = run(main())
    # A loop blocked by the waiting call would not tick at all (and never get to release the model).
    assert_small(lags)


@pytest.mark.timeout(60)
def test_a_thousand_concurrent_asubmits_start_no_thread() -> None:
    model = Gated()
    model.release.set()
    with Runtime(model, backend="thread", workers=1, partition_size=64, max_pending=2000) as rt:

        async def main() -> tuple[int, int]:
            assert await rt.asubmit(0) == 0  # the batcher and completer are running now
            model.release.clear()
            before = threading.active_count()
            try:
                tasks = [asyncio.ensure_future(rt.asubmit(i)) for i in range(1000)]
                await eventually(lambda: rt.stats().pending == 1000, "1000 items in flight")
                during = threading.active_count()
            finally:
                model.release.set()
            assert await asyncio.gather(*tasks) == [2 * i for i in range(1000)]
            return before, during

        before, during = run(main(), 50)
    # A thread per request would add a thousand; asyncio.to_thread, min(32, cores + 4).
    assert during - before <= 1, (before, during)


# ------------------------------------------------------------------------------- cancellation, close


@pytest.mark.timeout(30)
def test_cancelling_a_queued_asubmit_cancels_its_item() -> None:
    seen: list[int] = []

    def model(partition: Any) -> list[Any]:
        seen.extend(partition)
        return [x * 2 for x in partition]

    # A partition closes only when full (4 items): the first item waits in the batcher.
    with Runtime(model, backend="thread", workers=1, partition_size=4, max_batch_delay_ms=60_000) as rt:

        async def main() -> list[Any]:
            doomed = asyncio.ensure_future(rt.asubmit(-1))
            await eventually(lambda: rt.stats().queued == 1, "the item queued in the batcher")
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            assert rt.stats().pending == 0, "its room came back at once"
            # [-1 (cancelled), 1, 2, 3] close the first partition, [4 .. 7] the second
            return list(await asyncio.gather(*(rt.asubmit(x) for x in range(1, 8))))

        assert run(main()) == [2 * x for x in range(1, 8)]
    assert sorted(seen) == list(range(1, 8)), "the cancelled item never ran"


@pytest.mark.timeout(30)
def test_room_handed_to_a_cancelled_waiter_comes_back() -> None:
    """A coroutine waiting for room is cancelled just after the room was handed to it: not one slot leaks."""
    model = Gated()
    with Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=4) as rt:

        async def main() -> None:
            try:
                held = [asyncio.ensure_future(rt.asubmit(i)) for i in range(4)]
                await eventually(lambda: rt.stats().pending == 4, "4 items in flight")
                waiter = asyncio.ensure_future(rt.asubmit(99))
                await yield_to_new_tasks()  # `waiter` is now waiting for room
            finally:
                model.release.set()
            # Hold the loop (a blocking poll, on purpose) until the runtime's thread has handed the
            # freed room to `waiter` — its wake-up is queued on this loop, not run yet — then cancel it.
            deadline = time.monotonic() + 10
            while rt.stats().pending != 1:
                assert time.monotonic() < deadline, rt.stats()
                time.sleep(0.001)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert await asyncio.gather(*held) == [0, 2, 4, 6]
            await eventually(lambda: rt.stats().pending == 0, "every slot given back")
            assert await asyncio.gather(*(rt.asubmit(i) for i in range(4))) == [0, 2, 4, 6]

        run(main())


@pytest.mark.timeout(30)
def test_leaving_amap_early_cancels_its_partitions() -> None:
    with _scaling_runtime() as rt:

        async def first() -> Any:
            async with contextlib.aclosing(rt.amap(range(4000))) as it:  # type: ignore[type-var]
                async for y in it:
                    return y
            return None

        assert run(first()) == 0
        _assert_no_phantom_backlog(rt)
    with _scaling_runtime() as rt:

        async def cancelled_consumer() -> None:
            task = asyncio.ensure_future(_drain(rt.amap(range(4000))))
            await eventually(lambda: rt.engine.backlog() >= 10, "partitions sent ahead")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(cancelled_consumer())
        _assert_no_phantom_backlog(rt)


async def _drain(it: Any) -> list[Any]:
    return [y async for y in it]


@pytest.mark.timeout(30)
def test_close_while_awaiting_delivers_outcomes_and_refuses_the_waiters() -> None:
    model = Gated()
    rt = Runtime(model, backend="thread", workers=1, partition_size=4, max_pending=4).start()

    async def main() -> None:
        try:
            held = [asyncio.ensure_future(rt.asubmit(i)) for i in range(4)]
            await eventually(lambda: rt.stats().pending == 4, "4 items in flight")
            blocked = asyncio.ensure_future(rt.asubmit(99))
            await yield_to_new_tasks()  # `blocked` is now waiting for room
            closing = asyncio.ensure_future(rt.aclose())  # flushes in its own thread: the loop runs on
            with pytest.raises(EngineClosed, match="closed while this call waited for room"):
                await blocked
            assert not closing.done(), "close waits for the items in flight"
        finally:
            model.release.set()
        await closing
        assert await asyncio.gather(*held) == [0, 2, 4, 6]
        with pytest.raises(EngineClosed, match="the runtime is closed"):
            await rt.asubmit(1)

    try:
        run(main())
    finally:
        model.release.set()
        rt.close()


@pytest.mark.timeout(60)
def test_coroutines_that_find_it_not_started_await_one_start_while_the_loop_runs() -> None:
    loading = threading.Event()
    loads: list[str] = []

    @factory
    def slow_to_load() -> Callable[[Any], list[Any]]:
        loads.append(threading.current_thread().name)
        loading.wait(20)  # the workers load until the test lets them
        return lambda partition: [x * 2 for x in partition]

    async def main() -> tuple[list[Any], list[float], int]:
        lags = ticking()
        rt = Runtime(slow_to_load, backend="thread", workers=2, partition_size=4)
        try:
            work = asyncio.ensure_future(asyncio.gather(*(rt.asubmit(i) for i in range(20))))
            await eventually(lambda: len(lags) >= 20, "20 ticks while the workers load")  # ~0.2 s
            assert not work.done() and len(loads) == 2, "both workers are loading the model"
            starters = len([t for t in threading.enumerate() if t.name == "tuner-start"])
        finally:
            loading.set()
        out = list(await work)
        await rt.aclose()
        # async with, on the process backend: start and close in a thread of their own
        async with Runtime("builtin:sleep", backend="process", workers=1, partition_size=4) as rt2:
            assert await rt2.asubmit(3) == 6
        return out, list(lags), starters

    out, lags, starters = run(main(), 50)
    assert out == [2 * i for i in range(20)] and len(loads) == 2
    assert starters == 1, "twenty coroutines, one start"
    # a loop blocked by the start would have stood still until the load's 20 s timeout
    assert_small(lags)
    assert max(lags) < 5, f"the loop stood still for {max(lags):.1f} s"


def ticking() -> list[float]:
    """Start a task on the running loop that sleeps 10 ms at a time; the list gets how late each tick was."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []

    async def tick() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t - 0.01)

    task = loop.create_task(tick())  # ends with the loop (asyncio.run cancels what is left)
    _tickers.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(_tickers.discard)
    return lags


_tickers: set[asyncio.Task[None]] = set()


def assert_small(lags: list[float]) -> None:
    """The ticker's lag stays small: median under 20 ms, p90 under 50 ms (a shared host descheduling
    the loop's thread now and then shows in the few slowest ticks, not in these)."""
    ordered = sorted(lags)
    median, p90 = statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]
    assert median < 0.02 and p90 < 0.05, f"loop lag median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms"
