"""``asubmit_all``: a request's items, all or none — room for every item now or ``Overloaded`` at once
(whatever the overload policy), then each item's output or its failure record, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tuner.engine import Failure
from tuner.errors import EngineClosed, Overloaded
from tuner.runtime import Runtime
from tuner.runtime.gate import Gate

from .helpers import model_spec
from .test_async import eventually, run
from .test_backpressure import Gated


@pytest.mark.timeout(30)
def test_outputs_in_order_with_each_failure_record_in_its_place() -> None:
    items = [1, 2, -3, 4, 5, -6, 7] * 3
    with Runtime(
        model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4, max_batch_delay_ms=1
    ) as rt:
        got = run(rt.asubmit_all(items))
        assert run(rt.asubmit_all([])) == []
        s = rt.stats()
    assert [y for x, y in zip(items, got, strict=True) if x >= 0] == [2 * x for x in items if x >= 0]
    failed = [y for x, y in zip(items, got, strict=True) if x < 0]
    assert all(
        isinstance(f, Failure) and f.cause == "exception" and f.exc_type == "ValueError" for f in failed
    )
    assert [f.message for f in failed][:2] == ["ValueError: negative item -3", "ValueError: negative item -6"]
    assert s.pending == 0, "every item's room came back"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("policy", ["block", "timeout", "reject"])
def test_past_max_pending_it_refuses_at_once_whatever_the_policy(policy: str) -> None:
    model = Gated()
    with Runtime(
        model,
        backend="thread",
        workers=1,
        partition_size=4,
        max_pending=8,
        overload=policy,
        overload_timeout_s=5,
    ) as rt:

        async def main() -> float:
            try:
                held = asyncio.ensure_future(rt.asubmit_all(list(range(6))))
                await eventually(lambda: rt.stats().pending == 6, "6 items in flight")
                t0 = time.monotonic()
                with pytest.raises(Overloaded, match=r"6 items in flight \(max_pending 8\)"):
                    await rt.asubmit_all([6, 7, 8])  # 3 more do not fit: none is taken
                waited = time.monotonic() - t0
                assert rt.stats().pending == 6, "a refused request takes no room"
                with pytest.raises(Overloaded, match="9 items at once is more than max_pending 8"):
                    await rt.asubmit_all(list(range(9)))
            finally:
                model.release.set()
            assert await held == [2 * i for i in range(6)]
            assert await rt.asubmit_all([6, 7, 8]) == [12, 14, 16], "room again: accepted"
            return waited

        waited = run(main())
        assert rt.stats().rejected == 2
    assert waited < 1.0, f"refused at once, not after waiting ({waited:.2f} s)"


@pytest.mark.timeout(30)
def test_cancelling_the_request_cancels_its_queued_items_and_gives_the_room_back() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def model(partition: Any) -> list[Any]:
        with lock:
            seen.extend(partition)
        return [x * 2 for x in partition]

    # A partition closes only when full (8 items): the request's 3 items wait in the batcher.
    with Runtime(model, backend="thread", workers=1, partition_size=8, max_batch_delay_ms=60_000) as rt:

        async def main() -> list[Any]:
            doomed = asyncio.ensure_future(rt.asubmit_all([-1, -2, -3]))
            await eventually(lambda: rt.stats().queued == 3, "3 items queued in the batcher")
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            assert rt.stats().pending == 0, "the room came back at once"
            # [-1, -2, -3 (cancelled), 1 .. 5] close the first partition, [6 .. 13] the second
            return await rt.asubmit_all(list(range(1, 14)))

        assert run(main()) == [2 * x for x in range(1, 14)]
    assert sorted(seen) == list(range(1, 14)), "the cancelled items never ran"


@pytest.mark.timeout(30)
def test_a_closed_runtime_refuses_the_request() -> None:
    rt = Runtime(model_spec("double_or_fail"), backend="thread", workers=1, partition_size=4)
    rt.start()
    rt.close()
    with pytest.raises(EngineClosed):
        run(rt.asubmit_all([1, 2]))


def test_gate_acquire_now_is_all_or_nothing_and_never_ahead_of_waiters() -> None:
    gate = Gate(10)
    gate.acquire_now(7)
    with pytest.raises(Overloaded, match=r"7 items in flight \(max_pending 10\); retry later"):
        gate.acquire_now(4)
    assert (gate.pending, gate.rejected) == (7, 1)
    gate.acquire_now(3)
    gate.release(10)

    async def queue_a_waiter() -> None:
        gate.acquire_now(10)
        waiter = asyncio.ensure_future(gate.acquire_async(5, "block", 1.0))
        await asyncio.sleep(0)  # the waiter queues for room
        gate.release(10)  # its 5 are handed to it at once ...
        with pytest.raises(Overloaded):
            gate.acquire_now(6)  # ... so 6 more do not fit
        assert await waiter == 5
        gate.acquire_now(5)
        assert gate.pending == 10

    asyncio.run(queue_a_waiter())
    gate.close()
    with pytest.raises(EngineClosed):
        gate.acquire_now(1)
