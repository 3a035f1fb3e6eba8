"""Airtight in a long-lived process (issue 8): nothing a failure touches outlives it.

Processes a model starts die with its worker; shared memory is released after every failure; a
listener or a supervisor bug cannot take callers down with a wrong error; thread engines leave the
caller's environment as they found it; a model raising KeyboardInterrupt or SystemExit is one
failed partition.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.engine.helpers import alive, children_recorded, expected_failures, gone, spec
from tuner.engine import Engine, EngineConfig, Failure, FaultPlan
from tuner.engine import events as ev
from tuner.engine.ledger import Ledger
from tuner.engine.transport import Poller
from tuner.errors import EngineFailed, ExitCode, ModelSpecError, exit_code_for

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


# -- 1. processes a model starts die with its worker --------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("model", "settings", "cause"),
    [
        ("child_then_crash_on_13", {}, "crash"),
        ("child_then_hang_on_13", {"timeout_s": 0.5}, "timeout"),
        ("child_then_hog_on_13", {"memory_limit_mb": 300}, "memory"),
    ],
)
def test_what_a_model_started_dies_with_its_worker(
    markers: Path, model: str, settings: dict, cause: str
) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=8, retries=2, **settings)
    with Engine(spec(model), cfg, on_event=seen.append) as engine:
        assert list(engine.map(range(32))) == list(range(32))
        children = children_recorded(markers)
        assert len(children) == 1, children
        # The worker's failure was handled (its partition re-ran): what it started is gone already,
        # while the engine still runs.
        assert gone(list(children)), f"{cause}: the process the model started outlived its worker"
    assert [e.cause for e in seen if isinstance(e, ev.PartitionFailed)] == [cause]


@pytest.mark.timeout(60)
def test_what_a_model_started_dies_when_its_worker_retires_or_the_engine_closes(markers: Path) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=1)
    engine = Engine(spec("child_per_worker"), cfg, on_event=seen.append).start()
    try:
        assert list(engine.map(range(200))) == list(range(200))
        children = children_recorded(markers)
        assert sorted(children.values()) == sorted(e.pid for e in seen if isinstance(e, ev.WorkerStarted)), (
            "each worker should have started one process"
        )
        engine.resize(1)
        deadline = time.monotonic() + 10
        while not any(isinstance(e, ev.WorkerExited) and e.cause == "retired" for e in seen):
            assert time.monotonic() < deadline, "no worker retired"
            time.sleep(0.01)
        retired = next(e.pid for e in seen if isinstance(e, ev.WorkerExited))
        of_retired = [c for c, w in children.items() if w == retired]
        of_kept = [c for c, w in children.items() if w != retired]
        assert gone(of_retired), "the retired worker's process outlived it"
        assert all(alive(c) for c in of_kept), "the remaining worker's process should still run"
        assert list(engine.map(range(10))) == list(range(10))
    finally:
        engine.close()
    assert gone(list(children)), "a process a model started outlived the engine's close"


# -- 2. shared memory after failures ----------------------------------------------------------------
@pytest.mark.timeout(120)
def test_shared_memory_stays_flat_through_crashes_and_timeouts() -> None:
    rows, cols = 16, 1024  # 16 rows x 8 KiB = 128 KiB per partition: through shared memory
    x = np.arange(80 * rows * cols, dtype=np.float64).reshape(-1, cols)
    plan = FaultPlan(crash=0.25, hang=0.08, seed=3)
    cfg = EngineConfig(
        workers=2,
        partition_size=rows,
        prefetch=2,
        retries=6,
        timeout_s=0.3,
        faults=plan,
        backoff_base_s=0.001, backoff_cap_s=0.01,
    )
    seen: list[ev.Event] = []
    with Engine(spec("row_sums"), cfg, on_event=seen.append) as engine:
        fds_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
        got = np.concatenate([r.outputs for r in engine.map_partitions(x)])
        segments = glob.glob(f"/dev/shm/tuner_{os.getpid()}_*")
        fds_after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    np.testing.assert_array_equal(got, x.sum(axis=1))
    failures = [e for e in seen if isinstance(e, ev.PartitionFailed)]
    expected, _ = expected_failures(plan, len(x), rows, cfg.retries)
    assert sorted((e.items, e.attempt, e.retry) for e in failures) == expected
    assert {e.cause for e in failures} == {"crash", "timeout"} and len(failures) >= 15
    # At most workers x prefetch partitions are in flight, plus those of a worker being killed: one
    # segment each. A segment not released after a failure would add one per failure.
    assert len(segments) <= 8, f"{len(segments)} segments after {len(failures)} failures"
    # Descriptors too: each segment holds two (its own and its mapping's); a dead worker's socket,
    # sentinel and pipes (3) are closed and its replacement opens as many. Slack: one worker still
    # being killed while its replacement starts. A leak of one per failure would be 15 or more.
    assert fds_after - fds_before <= 2 * len(segments) + 6, (fds_before, fds_after, len(failures))
    # the autouse fixture checks that every segment is unlinked at close


# -- 4. the poller after a worker's socket closed ---------------------------------------------------
def test_the_poller_never_touches_a_socket_closed_since_the_last_assign() -> None:
    a, a_peer = socket.socketpair()
    b, b_peer = socket.socketpair()
    try:
        poller = Poller()
        poller.assign([(a, "a"), (b, "b")])
        poller.want_write([a, b])  # both sockets were full
        assert sorted(poller.wait(0)) == ["a", "b"]  # both writable now
        b.close()  # the worker behind b died: its socket closes before the wait map is rebuilt
        poller.want_write([a])  # a flush in between must not ask b for its (now -1) fd
        poller.want_write([])
        poller.assign([(a, "a")])
        assert poller.wait(0) == []
        a_peer.send(b"x")
        assert poller.wait(1.0) == ["a"]
    finally:
        for s in (a, a_peer, b_peer):
            s.close()


# -- 5. a listener that raises --------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "inline"])
def test_a_listener_that_raises_is_logged_once_and_the_engine_goes_on(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def listener(e: ev.Event) -> None:
        nonlocal calls
        if isinstance(e, ev.PartitionFinished):
            calls += 1
            raise ValueError("listener bug")

    caplog.set_level(logging.ERROR, logger="tuner.engine")
    with Engine(
        spec("double"), EngineConfig(backend=backend, workers=2, partition_size=5), listener
    ) as engine:
        assert list(engine.map(range(100))) == [2 * i for i in range(100)]
    assert calls == 20  # it was called for every partition: isolated, not dropped
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1
    assert "PartitionFinished" in with_traceback[0].getMessage()
    assert "listener bug" in caplog.text
    assert "raised 20 times in all" in caplog.text


# -- 6. a bug in the supervisor ---------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
def test_a_supervisor_bug_is_engine_failed_not_the_users_model(
    backend: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_finished(self, part, outputs, service_s, now):
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(Ledger, "finished", broken_finished)
    caplog.set_level(logging.ERROR, logger="tuner.engine")
    with Engine(spec("double"), EngineConfig(backend=backend, workers=2, partition_size=4)) as engine:
        futures = engine.submit_many([[1, 2], [3, 4], [5, 6]])
        for f in futures:
            with pytest.raises(EngineFailed) as info:
                f.result(timeout=20)
        err = info.value
        assert "RuntimeError: bookkeeping bug" in str(err) and "bug in tuner" in str(err)
        assert not isinstance(err, ModelSpecError) and exit_code_for(err) == ExitCode.FAILED == 1
        with pytest.raises(EngineFailed):
            engine.submit([7])
    assert "bookkeeping bug" in caplog.text and "Traceback" in caplog.text
    # the autouse fixture checks that no worker process survived


# -- 9. thread and inline engines put the environment back --------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_thread_limits_are_put_back_when_the_engine_closes(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    for var in THREAD_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's own setting
    blas_before = [p["num_threads"] for p in threadpool_info()]
    with Engine(spec("env_threads"), EngineConfig(backend=backend, threads_per_worker=1)) as engine:
        assert set(engine.map(range(4))) == {"1"}  # while it runs, the limit applies
    assert os.environ.get("OMP_NUM_THREADS") == "3"
    assert [v for v in THREAD_ENV if v != "OMP_NUM_THREADS" and v in os.environ] == []
    assert [p["num_threads"] for p in threadpool_info()] == blas_before
    # A process engine started later that leaves threads alone sees the caller's setting, not ours.
    with Engine(spec("env_threads"), EngineConfig(workers=1, threads_per_worker=None)) as engine:
        assert set(engine.map(range(4))) == {"3"}


# -- 10. KeyboardInterrupt and SystemExit from the model -----------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread", "inline"])
@pytest.mark.parametrize(
    ("model", "exc_type", "message"),
    [
        ("interrupt_on_13", "KeyboardInterrupt", "KeyboardInterrupt"),
        ("exit_on_13_via_sys_exit", "SystemExit", "SystemExit: 3"),
    ],
)
def test_a_model_raising_keyboard_interrupt_or_system_exit_fails_that_item_and_says_so(
    backend: str, model: str, exc_type: str, message: str
) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(backend=backend, workers=2, partition_size=8, retries=0)
    with Engine(spec(model), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(32)))
        assert list(engine.map(range(14, 20))) == list(range(14, 20))  # still serving
    failed = {i: o for i, o in enumerate(out) if isinstance(o, Failure)}
    assert list(failed) == [13]
    f = failed[13]
    assert (f.cause, f.exc_type, f.message) == ("exception", exc_type, message), f
    assert exc_type in (f.traceback or "")
    assert [o for i, o in enumerate(out) if i != 13] == [i for i in range(32) if i != 13]
    assert not [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "crash"]


# -- the engine's own threads: none left behind ---------------------------------------------------------
def test_closing_leaves_no_engine_thread_behind() -> None:
    before = set(threading.enumerate())
    with Engine(spec("double"), EngineConfig(backend="thread", workers=3)) as engine:
        assert list(engine.map(range(30))) == [2 * i for i in range(30)]
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [t.name for t in set(threading.enumerate()) - before] == []
