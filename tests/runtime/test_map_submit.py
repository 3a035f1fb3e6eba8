"""map (order, failures raise/yield) and submit (dynamic batching) on the real engine."""

from __future__ import annotations

import threading
from concurrent.futures import wait

import pytest

from tuner.engine import Failure
from tuner.engine import events as ev
from tuner.errors import ConfigError, ItemFailed
from tuner.runtime import Runtime

from .helpers import model_spec


@pytest.mark.timeout(30)
def test_map_yields_outputs_in_input_order() -> None:
    items = list(range(1000))
    with Runtime(model_spec("slow_double"), backend="thread", workers=3, partition_size=7) as rt:
        assert list(rt.map(items)) == [x * 2 for x in items]
        # a generator input (no len) takes the same path
        assert list(rt.map(iter(items[:50]))) == [x * 2 for x in items[:50]]
        assert rt.stats().items_done == 1050


@pytest.mark.timeout(30)
def test_map_raises_item_failed_with_its_cause() -> None:
    items = [1, 2, 3, -4, 5, 6]
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4) as rt:
        got = []
        with pytest.raises(ItemFailed) as info:
            for y in rt.map(items):  # default: raise
                got.append(y)
        assert got == [2, 4, 6], "outputs before the failed item are delivered first"
        assert info.value.index == 3
        failure = info.value.failure
        assert isinstance(failure, Failure)
        assert failure.cause == "exception" and failure.exc_type == "ValueError"
        assert "negative item -4" in failure.message
        assert "ValueError" in (failure.traceback or "")


@pytest.mark.timeout(30)
def test_map_yields_failure_records_in_place() -> None:
    items = [1, -2, 3, 4, -5, 6, 7]
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=3) as rt:
        out = list(rt.map(items, on_failure="yield"))
        assert len(out) == len(items)
        for x, y in zip(items, out, strict=True):
            if x < 0:
                assert isinstance(y, Failure) and y.cause == "exception"
            else:
                assert y == x * 2
        s = rt.stats()
        assert s.items_failed == 2 and s.failures == {"exception": 2}
        with pytest.raises(ConfigError):
            rt.map(items, on_failure="ignore")  # type: ignore[arg-type]


def _recorder() -> tuple[list[ev.PartitionSubmitted], threading.Lock, object]:
    seen: list[ev.PartitionSubmitted] = []
    lock = threading.Lock()

    def on_event(e: ev.Event) -> None:
        if isinstance(e, ev.PartitionSubmitted):
            with lock:
                seen.append(e)

    return seen, lock, on_event


@pytest.mark.timeout(30)
def test_dynamic_batch_closes_at_partition_size() -> None:
    seen, lock, on_event = _recorder()
    # A 60 s delay: if the partitions closed on time rather than on size, the results would not
    # arrive before the test's timeout.
    with Runtime(
        model_spec("slow_double"),
        backend="thread",
        workers=1,
        partition_size=8,
        max_batch_delay_ms=60_000,
        on_event=on_event,  # type: ignore[arg-type]
    ) as rt:
        futures = [rt.submit(i) for i in range(16)]
        _, not_done = wait(futures, timeout=20)
        assert not not_done
        assert [f.result() for f in futures] == [i * 2 for i in range(16)]
        with lock:
            assert [e.items for e in seen] == [8, 8]


@pytest.mark.timeout(30)
def test_dynamic_batch_closes_at_max_delay_when_few_items_arrive() -> None:
    seen, lock, on_event = _recorder()
    with Runtime(
        model_spec("slow_double"),
        backend="thread",
        workers=1,
        partition_size=64,
        max_batch_delay_ms=50,
        on_event=on_event,  # type: ignore[arg-type]
    ) as rt:
        futures = [rt.submit(i) for i in range(3)]
        assert [f.result(timeout=20) for f in futures] == [0, 2, 4]
        with lock:
            assert [e.items for e in seen] == [3]  # one partial partition, closed by the delay
            submitted_at = seen[0].t
        # The batcher held the first item for the delay before closing the partition.
        stats = rt.stats()
        assert stats.latency_ms["p50"] is not None and stats.latency_ms["p50"] >= 50
        assert submitted_at > 0


@pytest.mark.timeout(30)
def test_submit_failure_raises_on_that_items_future_only() -> None:
    with Runtime(
        model_spec("double_or_fail"), backend="thread", workers=2, partition_size=4, max_batch_delay_ms=20
    ) as rt:
        futures = [rt.submit(x) for x in (1, -2, 3, 4)]
        assert futures[0].result(timeout=20) == 2
        with pytest.raises(ItemFailed) as info:
            futures[1].result(timeout=20)
        assert info.value.failure.cause == "exception"  # type: ignore[attr-defined]
        assert [futures[2].result(timeout=20), futures[3].result(timeout=20)] == [6, 8]


@pytest.mark.timeout(30)
def test_submit_from_many_threads_each_gets_its_own_output() -> None:
    results: dict[int, int] = {}
    lock = threading.Lock()
    with Runtime(
        model_spec("slow_double"), backend="thread", workers=2, partition_size=16, max_batch_delay_ms=2
    ) as rt:

        def client(base: int) -> None:
            for i in range(base, base + 100):
                y = rt.submit(i).result(timeout=20)
                with lock:
                    results[i] = y

        threads = [threading.Thread(target=client, args=(k * 1000,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 400 and all(y == 2 * x for x, y in results.items())


@pytest.mark.timeout(30)
def test_close_flushes_queued_items_and_refuses_new_ones() -> None:
    rt = Runtime(model_spec("slow_double"), backend="thread", partition_size=100, max_batch_delay_ms=60_000)
    futures = [rt.submit(i) for i in range(5)]
    rt.close()  # the partition is not full and its delay far off: close sends it anyway
    assert [f.result(timeout=1) for f in futures] == [0, 2, 4, 6, 8]
    with pytest.raises(Exception, match="closed"):
        rt.submit(1)


@pytest.mark.timeout(60)
def test_process_backend_map_and_submit_agree() -> None:
    import numpy as np

    rows = np.arange(300, dtype=np.int64)
    with Runtime(
        "builtin:sleep", backend="process", workers=2, partition_size=32, max_batch_delay_ms=5
    ) as rt:
        mapped = np.asarray(list(rt.map(rows)))
        submitted = np.asarray([f.result(timeout=30) for f in [rt.submit(r) for r in rows]])
    assert np.array_equal(mapped, rows * 2) and np.array_equal(submitted, rows * 2)


# ------------------------------------------------------------------------------- map_batches


@pytest.mark.timeout(30)
def test_map_batches_gives_each_partition_whole_in_input_order() -> None:
    items = list(range(103))
    with Runtime(model_spec("slow_double"), backend="thread", workers=3, partition_size=10) as rt:
        batches = list(rt.map_batches(items))
        assert [len(b) for b in batches] == [10] * 10 + [3]
        assert [y for b in batches for y in b] == list(rt.map(items))
        assert [list(b) for b in rt.map_batches(iter(items[:25]))] == [
            [x * 2 for x in items[i:j]] for i, j in ((0, 10), (10, 20), (20, 25))
        ]


@pytest.mark.timeout(30)
def test_map_batches_failures_raise_at_the_item_or_come_in_place() -> None:
    items = [1, 2, 3, -4, 5, 6, 7]
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=3) as rt:
        got = []
        with pytest.raises(ItemFailed) as info:
            for batch in rt.map_batches(items):
                got.append(batch)
        assert got == [[2, 4, 6]] and info.value.index == 3
        out = list(rt.map_batches(items, on_failure="yield"))
        assert out[0] == [2, 4, 6] and out[2] == [14]
        four, ten, twelve = out[1]  # the failed partition: one outcome per item, aligned
        assert isinstance(four, Failure) and four.exc_type == "ValueError" and (ten, twelve) == (10, 12)
        with pytest.raises(ConfigError):
            rt.map_batches(items, overload="drop")  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_map_batches_of_several_outputs_are_arrays_even_when_split() -> None:
    np = pytest.importorskip("numpy")
    items = [float(i) for i in range(10)]
    with Runtime(model_spec("pairs_in_twos"), backend="thread", workers=2, partition_size=2, retries=0) as rt:
        whole = list(rt.map_batches(items))
        assert len(whole) == 5 and all(isinstance(b, tuple) and len(b) == 2 for b in whole)
        assert all(isinstance(a, np.ndarray) for b in whole for a in b)
        np.testing.assert_array_equal(np.concatenate([b[0] for b in whole]), np.asarray(items) * 2)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in whole]), np.asarray(items) + 1)
        assert [tuple(y) for y in rt.map(items)] == [(x * 2, x + 1) for x in items]
    # partitions of 5 fail (MemoryError) and are split until their pieces run: each comes back
    # stacked again, a tuple of arrays of 5 rows, as if it had run whole
    with Runtime(model_spec("pairs_in_twos"), backend="thread", workers=2, partition_size=5, retries=0) as rt:
        split = list(rt.map_batches(items))
        assert rt.stats().items_failed == 0
    assert [(type(b), len(b)) for b in split] == [(tuple, 2), (tuple, 2)]
    for b, first in zip(split, (0, 5), strict=True):
        assert all(isinstance(a, np.ndarray) and a.shape == (5,) for a in b)
        np.testing.assert_array_equal(b[0], np.arange(first, first + 5) * 2.0)
        np.testing.assert_array_equal(b[1], np.arange(first, first + 5) + 1.0)
