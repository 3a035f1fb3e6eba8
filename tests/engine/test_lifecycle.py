"""Guarantee 6 (no orphans, no leaked shared memory) and 7 (resize without loss or duplicates)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.engine.helpers import children_recorded, spec
from tuner.engine import Engine, EngineConfig
from tuner.engine import events as ev

REPO = Path(__file__).resolve().parents[2]

# A parent that starts an engine on a slow model, prints its workers' pids as JSON once results flow
# (so every segment of the first round is created and registered), then keeps the engine busy until
# it is interrupted or killed.
PARENT = textwrap.dedent(
    """
    import json, sys, threading
    import numpy as np
    from tuner.engine import Engine, EngineConfig
    from tuner.engine import events as ev

    pids = []
    def on_event(e):
        if isinstance(e, ev.WorkerStarted):
            pids.append(e.pid)

    if __name__ == "__main__":
        x = np.zeros((4096, 64 * 1024 // 8))  # big rows: partitions go through shared memory
        with Engine(sys.argv[1], EngineConfig(workers=2, partition_size=2), on_event=on_event) as engine:
            while True:
                for i, _ in enumerate(engine.map(x)):
                    if i == 0 and len(pids) == 2:
                        print(json.dumps(pids), flush=True)
    """
)


def _start_parent(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen(
        # each worker starts a process of its own (a sleep) on its first partition
        [sys.executable, str(script), spec("child_per_worker")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TUNER_TEST_MARKERS": str(markers)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until both workers are up
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # gone between listing and reading: what we wait for
        return False


def _gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _segments_of(pid: int) -> list[str]:
    return [p.name for p in Path("/dev/shm").glob(f"tuner_{pid}_*")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_no_worker_or_segment_survives_the_parent(tmp_path: Path, how: str) -> None:
    proc, workers = _start_parent(tmp_path)
    try:
        assert _segments_of(proc.pid), "the parent should be using shared memory"
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert _gone(workers), f"workers {workers} survived the parent's {how}"
    started = children_recorded(tmp_path / "markers")
    assert started, "the workers' model should have started processes"
    assert _gone(list(started)), f"processes the model started survived the parent's {how}"
    # After SIGKILL the resource tracker unlinks what the dead parent left; give it the same grace.
    deadline = time.monotonic() + 5
    while _segments_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _segments_of(proc.pid), f"shared memory leaked after {how}"


@pytest.mark.timeout(30)
def test_an_exception_in_the_caller_stops_the_workers_at_once() -> None:
    pids: list[int] = []

    def on_event(e: ev.Event) -> None:
        if isinstance(e, ev.WorkerStarted):
            pids.append(e.pid)

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="caller failed"):
        with Engine(spec("slow"), EngineConfig(workers=2, partition_size=50), on_event=on_event) as engine:
            futures = [engine.submit(list(range(50))) for _ in range(20)]  # ~10 s of work queued
            raise RuntimeError("caller failed")
    assert time.monotonic() - t0 < 5
    assert all(f.cancelled() or f.done() for f in futures)
    assert _gone(pids)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_resize_while_running_loses_and_duplicates_nothing(backend: str) -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(backend=backend, workers=1, partition_size=4)
    with Engine(spec("slow"), cfg, on_event=seen.append) as engine:
        stop = threading.Event()

        def churn() -> None:
            sizes = [3, 1, 2, 4, 1, 3]
            i = 0
            while not stop.is_set():
                engine.resize(sizes[i % len(sizes)])
                i += 1
                stop.wait(0.15)

        t = threading.Thread(target=churn)
        t.start()
        try:
            out = list(engine.map(range(600)))
        finally:
            stop.set()
            t.join()
    assert out == list(range(600))
    started = [e.worker for e in seen if isinstance(e, ev.WorkerStarted)]
    exited = [(e.worker, e.cause) for e in seen if isinstance(e, ev.WorkerExited)]
    assert len(started) >= 4  # the churn grew the pool at least from 1 to 3
    # every worker started also left, once: retired by a resize, or closed with the engine (so did
    # workers a resize started and retired again before they had loaded the model)
    left = [w for w, _ in exited]
    assert len(left) == len(set(left)) and set(started) <= set(left)
    assert {c for _, c in exited} == {"retired", "closed"}
    assert not any(isinstance(e, ev.PartitionFailed) for e in seen)


@pytest.mark.timeout(30)
def test_close_without_wait_cancels_what_has_not_run() -> None:
    engine = Engine(spec("slow"), EngineConfig(workers=1, partition_size=10)).start()
    futures = [engine.submit(list(range(10))) for _ in range(30)]
    t0 = time.monotonic()
    engine.close(wait=False)
    assert time.monotonic() - t0 < 3
    assert any(f.cancelled() for f in futures)
    for f in futures:
        if not f.cancelled():
            assert f.result().outputs == list(range(10))


@pytest.mark.timeout(30)
def test_stopping_a_map_early_cancels_what_has_not_started() -> None:
    seen: list[ev.Event] = []
    with Engine(spec("slow"), EngineConfig(workers=1, partition_size=5), on_event=seen.append) as engine:
        it = engine.map(range(1000))
        assert [next(it) for _ in range(5)] == list(range(5))
        it.close()  # type: ignore[attr-defined]
        assert list(engine.map(range(10))) == list(range(10))  # still serving
    finished = sum(e.items for e in seen if isinstance(e, ev.PartitionFinished))
    assert finished < 300, f"{finished} items ran after the caller stopped"
