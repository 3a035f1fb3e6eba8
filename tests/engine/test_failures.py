"""Guarantees 2-5: a crash, a hang, an exception or a memory blow-up costs one attempt, not the pool."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.engine.helpers import spec
from tuner.engine import Engine, EngineConfig, Failure
from tuner.engine import events as ev

pytestmark = pytest.mark.timeout(90)


def _failed(out):
    return {i: o for i, o in enumerate(out) if isinstance(o, Failure)}


@pytest.mark.parametrize(
    ("model", "cause", "check", "attempts"),
    [
        # a crash is retried once at each size 16, 8, 4, 2, 1: 2 x 5 attempts
        ("segv_on_13", "crash", lambda f: f.signal == "SIGSEGV", 10),
        ("exit_on_13", "crash", lambda f: f.exitcode == 3, 10),
        # an exception whose type is not in retry_on is not retried, only split: 5 attempts
        (
            "raise_on_13",
            "exception",
            lambda f: f.exc_type == "ValueError" and "poison" in (f.traceback or ""),
            5,
        ),
    ],
)
def test_a_poison_item_fails_alone_and_its_neighbours_succeed(model, cause, check, attempts) -> None:
    cfg = EngineConfig(workers=2, partition_size=16, retries=1)
    with Engine(spec(model), cfg) as engine:
        out = list(engine.map(range(64)))
    failed = _failed(out)
    assert list(failed) == [13]
    f = failed[13]
    assert f.cause == cause and check(f), f
    assert f.attempts == attempts
    assert [o for i, o in enumerate(out) if i != 13] == [i for i in range(64) if i != 13]


def test_a_worker_that_crashes_once_is_replaced_and_only_its_partition_is_retried(markers) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=8, retries=2)
    with Engine(spec("segv_once_on_13"), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(64)))
        # The other worker may finish the run before the replacement has loaded the model: wait
        # for it (on a busy host loading takes a while), or close would stop it unannounced.
        deadline = time.monotonic() + 20
        while engine.stats()["live_workers"] < 2:
            assert time.monotonic() < deadline, "the crashed worker was not replaced"
            time.sleep(0.01)
    assert out == list(range(64))
    fails = [e for e in seen if isinstance(e, ev.PartitionFailed)]
    assert len(fails) == 1 and fails[0].cause == "crash" and fails[0].retry == "retry"
    retried_items = fails[0].items
    assert retried_items == 8  # only the partition that held item 13
    exits = [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "crash"]
    assert len(exits) == 1 and exits[0].signal == "SIGSEGV"
    starts = [e for e in seen if isinstance(e, ev.WorkerStarted)]
    assert len(starts) == 3 and starts[-1].replacing == exits[0].worker


def test_a_worker_killed_from_outside_is_noticed_at_once(markers) -> None:
    seen: list[tuple[float, ev.Event]] = []
    cfg = EngineConfig(workers=2, partition_size=8, retries=2)
    with Engine(
        spec("announce_pid_then_wait_on_13"), cfg, on_event=lambda e: seen.append((time.monotonic(), e))
    ) as engine:
        fut = engine.map(range(64))
        pid_file = markers / "pid"
        deadline = time.monotonic() + 20
        results = []
        import threading

        t = threading.Thread(target=lambda: results.extend(fut))
        t.start()
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the worker never reached item 13"
            time.sleep(0.01)
        killed_at = time.monotonic()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        t.join(30)
    assert results == list(range(64))
    fail = next((t, e) for t, e in seen if isinstance(e, ev.PartitionFailed))
    assert fail[1].cause == "crash" and "SIGKILL" in fail[1].message
    assert fail[0] - killed_at < 1.0, "the death should be seen through the process sentinel, not by polling"


def test_a_partition_past_its_timeout_kills_the_worker_and_is_retried(markers) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=8, timeout_s=0.5, retries=2)
    t0 = time.monotonic()
    with Engine(spec("hang_once_on_13"), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(64)))
    assert out == list(range(64))
    assert time.monotonic() - t0 < 15
    fails = [e for e in seen if isinstance(e, ev.PartitionFailed)]
    assert [f.cause for f in fails] == ["timeout"] and "timed out after 0.5 s" in fails[0].message
    exits = [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "timeout"]
    assert len(exits) == 1 and exits[0].signal in ("SIGTERM", "SIGKILL")


def test_exceptions_are_retried_only_when_their_type_is_allowed(markers) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=1, partition_size=8, retries=2, retry_on=("Flaky",))
    with Engine(spec("flaky_once_on_13"), cfg, on_event=seen.append) as engine:
        assert list(engine.map(range(32))) == list(range(32))
    assert [e.retry for e in seen if isinstance(e, ev.PartitionFailed)] == ["retry"]

    (markers / "flaky_once").unlink()
    seen.clear()
    cfg = EngineConfig(workers=1, partition_size=8, retries=2)  # default: nothing retried
    with Engine(spec("flaky_once_on_13"), cfg, on_event=seen.append) as engine:
        assert list(engine.map(range(32))) == list(range(32))
    # not retried as is: split in halves instead, and the halves (now healthy) succeed
    assert [e.retry for e in seen if isinstance(e, ev.PartitionFailed)] == ["split"]


def test_a_worker_over_its_memory_limit_is_killed_and_the_cause_recorded() -> None:
    cfg = EngineConfig(workers=1, partition_size=16, retries=0, memory_limit_mb=300)
    seen: list[ev.Event] = []
    with Engine(spec("hog_on_13"), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(32)))
    failed = _failed(out)
    assert list(failed) == [13]
    assert failed[13].cause == "memory" and "memory limit of 300 MB" in failed[13].message
    # no retries: killed once at each size 16, 8, 4, 2, 1 on the way down to item 13 alone
    assert failed[13].attempts == 5
    assert [e.signal for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "memory"] == [
        "SIGKILL"
    ] * 5


def test_thread_backend_survives_a_simulated_crash_and_a_hang() -> None:
    from tuner.engine import FaultPlan, TargetedFault

    plan = FaultPlan(targeted=(TargetedFault(item=5, kind="crash", attempt=1), TargetedFault(20, "hang", 1)))
    cfg = EngineConfig(backend="thread", workers=2, partition_size=4, timeout_s=0.3, retries=2, faults=plan)
    with Engine(spec("identity"), cfg) as engine:
        assert list(engine.map(list(range(40)))) == list(range(40))
        assert engine.stats()["replaced"] == 2


@pytest.mark.parametrize(
    ("model", "settings", "cause"),
    [("exit_on_13", {"retries": 2}, "crash"), ("hang_once_on_13", {"timeout_s": 0.5}, "timeout")],
)
def test_among_tiny_partitions_a_death_is_charged_to_the_partition_that_ran(
    markers, model, settings, cause
) -> None:
    """Results of tiny partitions may be held back to travel together; they die with a crashed or
    killed worker. The partition charged must still be the one that was running, not the oldest
    one whose result had not arrived."""
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=1, **settings)
    with Engine(spec(model), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(400)))
    item_of = {e.partition: i for i, e in enumerate(e for e in seen if isinstance(e, ev.PartitionSubmitted))}
    charged = [(item_of[e.partition], e.cause, e.retry) for e in seen if isinstance(e, ev.PartitionFailed)]
    if cause == "crash":  # item 13 kills its worker every time: 3 attempts, then its failure record
        assert charged == [(13, "crash", "retry"), (13, "crash", "retry"), (13, "crash", "final")]
        assert [i for i, o in enumerate(out) if isinstance(o, Failure)] == [13]
    else:  # item 13 hangs once: one timeout, then it succeeds
        assert charged == [(13, "timeout", "retry")]
        assert out == list(range(400))
