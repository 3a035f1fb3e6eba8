"""The ledger alone (no processes, no threads, a fake clock): exactly once, in order, through every failure."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from tuner.engine.config import Backoff, Failure
from tuner.engine.ledger import FINAL, IGNORED, RETRY, SPLIT, Job, Ledger, Part, PartitionResult


def _ledger(**kw) -> tuple[Ledger, list[Future[PartitionResult]]]:
    settled: list[Future[PartitionResult]] = []
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", Backoff(base_s=0.1, cap_s=1.0))
    return Ledger(rng=random.Random(1), settled=settled.append, **kw), settled


def _job(ledger: Ledger, items: list[int], first: int = 0, t: float = 0.0) -> Job:
    job = Job(ledger.next_id(), items, first, Future(), t)
    ledger.add(job)
    return job


def _drive(
    ledger: Ledger, fails: Callable[[Part], str | None], exc_type: str | None = None
) -> list[tuple[int, int, str]]:
    """Run every part to its end on a fake clock: ``fails(part)`` names a failure cause or None.

    Returns the decisions as (first item, items, decision). Time only moves when the queue is
    empty and a retry is due later: the clock jumps to it.
    """
    now = 0.0
    decisions = []
    while True:
        ledger.release_due(now)
        part = ledger.take()
        if part is None:
            due = ledger.next_retry()
            if due is None:
                return decisions
            assert due > now
            now = due
            continue
        ledger.sent(part)
        cause = fails(part)
        if cause is None:
            assert ledger.finished(part, [x * 10 for x in part.items], 0.001, now)
        else:
            decision, _ = ledger.failed(part, cause, "boom", now, exc_type=exc_type)
            decisions.append((part.first, part.n, decision))


def test_every_item_once_in_order_across_jobs() -> None:
    ledger, settled = _ledger()
    jobs = [_job(ledger, list(range(i * 5, i * 5 + 5)), first=i * 5, t=float(i)) for i in range(4)]
    assert _drive(ledger, lambda p: None) == []
    for i, job in enumerate(jobs):
        r = job.future.result(timeout=0)
        assert r.outputs == [x * 10 for x in range(i * 5, i * 5 + 5)]
        assert (r.failed, r.first_item, r.attempts, r.t_submit) == (0, i * 5, 1, float(i))
    assert settled == [j.future for j in jobs]
    assert (ledger.items_done, ledger.items_failed, ledger.retried, ledger.open_jobs) == (20, 0, 0, 0)


def test_a_poison_item_is_retried_then_split_down_to_itself() -> None:
    ledger, _ = _ledger(retries=1)
    job = _job(ledger, list(range(8)))
    decisions = _drive(ledger, lambda p: "crash" if 5 in p.items else None)
    # sizes 8, 4, 2, 1: each gets its first attempt and one retry; the single item then fails for good
    assert decisions == [
        (0, 8, RETRY),
        (0, 8, SPLIT),
        (4, 4, RETRY),
        (4, 4, SPLIT),
        (4, 2, RETRY),
        (4, 2, SPLIT),
        (5, 1, RETRY),
        (5, 1, FINAL),
    ]
    r = job.future.result(timeout=0)
    assert r.outputs[:5] == [0, 10, 20, 30, 40] and r.outputs[6:] == [60, 70]
    f = r.outputs[5]
    assert isinstance(f, Failure) and (f.cause, f.message, f.attempts) == ("crash", "boom", 8)
    assert (r.failed, r.attempts) == (1, 8)
    assert r.failures() == [(5, f)]
    assert (ledger.items_done, ledger.items_failed, ledger.retried) == (7, 1, 4)


def test_without_isolation_the_whole_part_fails_after_its_retries() -> None:
    ledger, _ = _ledger(retries=2, isolate=False)
    job = _job(ledger, [1, 2, 3])
    assert _drive(ledger, lambda p: "timeout") == [(0, 3, RETRY), (0, 3, RETRY), (0, 3, FINAL)]
    r = job.future.result(timeout=0)
    assert [o.cause for o in r.outputs] == ["timeout"] * 3 and r.failed == 3 and r.attempts == 3


@pytest.mark.parametrize(
    ("exc_type", "retry_on", "first_decision"),
    [("Flaky", ("Flaky",), RETRY), ("ValueError", ("Flaky",), SPLIT), ("ValueError", (), SPLIT)],
)
def test_exceptions_are_retried_only_when_their_type_is_listed(exc_type, retry_on, first_decision) -> None:
    ledger, _ = _ledger(retries=3, retry_on=retry_on)
    _job(ledger, [1, 2])
    calls = []

    def fails(p: Part) -> str | None:
        calls.append(p.n)
        return "exception" if len(calls) == 1 else None

    assert _drive(ledger, fails, exc_type=exc_type) == [(0, 2, first_decision)]


def test_crashes_timeouts_and_memory_kills_are_always_retried() -> None:
    for cause in ("crash", "timeout", "memory"):
        ledger, _ = _ledger(retries=1, retry_on=())
        _job(ledger, [1])
        assert _drive(ledger, lambda p, cause=cause: cause) == [(0, 1, RETRY), (0, 1, FINAL)]


def test_backoff_is_full_jitter_within_its_bounds_and_retries_jump_the_queue() -> None:
    ledger, _ = _ledger(retries=3, backoff=Backoff(base_s=0.1, cap_s=0.25))
    a = _job(ledger, [1])
    b = _job(ledger, [2])
    part = ledger.take()
    assert part is not None and part.job is a
    ledger.sent(part)
    now = 10.0
    bounds = []
    for attempt in (1, 2, 3):
        decision, backoff = ledger.failed(part, "crash", "x", now)
        assert decision == RETRY
        bound = min(0.25, 0.1 * 2 ** (attempt - 1))
        assert 0.0 <= backoff <= bound
        bounds.append(bound)
        assert ledger.next_retry() == pytest.approx(now + backoff)
        ledger.release_due(now + backoff - 1e-9)  # not due yet: b is still next
        assert ledger.pending[0].job is b
        ledger.release_due(now + backoff)
        assert ledger.pending[0] is part  # a retry goes before what waits
        assert ledger.take() is part
        ledger.sent(part)
    assert bounds == [0.1, 0.2, 0.25]


def test_a_cancelled_future_never_runs_and_a_late_cancel_is_harmless() -> None:
    ledger, settled = _ledger()
    a = _job(ledger, [1])
    b = _job(ledger, [2])
    c = _job(ledger, [3])
    assert a.future.cancel()
    part = ledger.take()
    assert part is not None and part.job is b  # a was dropped before it ran
    assert settled == [a.future]
    ledger.sent(part)
    assert b.future.cancel()  # the caller gives up while it runs
    assert ledger.finished(part, [20], 0.0, 1.0)  # recorded; set_result on a cancelled future is absorbed
    assert b.future.cancelled() and settled == [a.future, b.future]
    _drive(ledger, lambda p: None)
    assert c.future.result(timeout=0).outputs == [30]
    assert ledger.open_jobs == 0


def test_a_part_put_back_runs_again_first_without_an_attempt() -> None:
    ledger, _ = _ledger()
    job = _job(ledger, [1, 2])
    other = _job(ledger, [3])
    part = ledger.take()
    assert part is not None
    ledger.sent(part)
    ledger.put_back(part)
    assert ledger.pending[0] is part and part.exact and (part.attempt, part.total) == (0, 0)
    assert ledger.pending[1].job is other
    _drive(ledger, lambda p: None)
    assert job.future.result(timeout=0).attempts == 1


def test_hedged_copies_first_result_wins_and_a_failing_copy_decides_nothing() -> None:
    ledger, _ = _ledger()
    job = _job(ledger, [1, 2])
    part = ledger.take()
    assert part is not None
    ledger.sent(part)
    ledger.sent(part)  # a second copy on another worker
    assert ledger.failed(part, "crash", "x", 1.0) == (IGNORED, 0.0)  # the other copy still runs
    assert ledger.next_retry() is None and not ledger.pending
    ledger.sent(part)  # a third copy
    assert ledger.finished(part, ["a", "b"], 0.1, 2.0)
    assert not ledger.finished(part, ["late", "late"], 0.1, 3.0)
    assert ledger.failed(part, "timeout", "x", 3.0) == (IGNORED, 0.0)
    r = job.future.result(timeout=0)
    assert r.outputs == ["a", "b"] and r.attempts == 1
    assert ledger.items_done == 2


def test_split_halves_fill_their_own_slots() -> None:
    ledger, _ = _ledger(retries=0)
    job = _job(ledger, list(range(5)))
    part = ledger.take()
    assert part is not None
    ledger.sent(part)
    assert ledger.failed(part, "exception", "x", 0.0, exc_type="E") == (SPLIT, 0.0)
    left, right = ledger.take(), ledger.take()
    assert left is not None and right is not None
    assert (left.first, left.n, right.first, right.n) == (0, 2, 2, 3)
    ledger.sent(left)
    ledger.sent(right)
    assert ledger.finished(right, [20, 30, 40], 0.0, 1.0)  # out of order
    assert not job.future.done()
    assert ledger.finished(left, [0, 10], 0.0, 2.0)
    r = job.future.result(timeout=0)
    assert r.outputs == [0, 10, 20, 30, 40] and r.attempts == 2 and r.t_done == 2.0


def test_ending_settles_every_open_future() -> None:
    ledger, settled = _ledger()
    a = _job(ledger, [1, 2])
    pa = ledger.take()
    assert pa is not None
    ledger.sent(pa)
    ledger.failed(pa, "exception", "x", 0.0, exc_type="E")  # split: halves queued
    left = ledger.take()
    assert left is not None
    ledger.sent(left)
    ledger.finished(left, [10], 0.0, 0.0)
    b = _job(ledger, [3])
    ledger.fail_all(Failure("load", "cannot load", 0), 1.0)
    assert a.future.result(timeout=0).outputs[0] == 10
    assert a.future.result(timeout=0).outputs[1].cause == "load"
    assert [o.cause for o in b.future.result(timeout=0).outputs] == ["load"]
    assert ledger.take() is None and ledger.open_jobs == 0
    assert settled == [a.future, b.future]

    ledger, _ = _ledger()
    c = _job(ledger, [1])
    ledger.cancel_all()
    assert c.future.cancelled() and ledger.take() is None

    ledger, _ = _ledger()
    d = _job(ledger, [1])
    err = RuntimeError("engine broke")
    ledger.abort_all(err)
    assert d.future.exception(timeout=0) is err and ledger.open_jobs == 0
