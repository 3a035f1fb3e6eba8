"""The engine: a supervisor thread that runs a model on a set of workers, item-exact through failures.

Data flow (every arrow on the right of the supervisor is one of its workers)::

  caller threads                      supervisor thread (owns all state below)                 workers
  ──────────────                      ─────────────────────────────────────────                ───────
  submit(items) ─► Future  ┐
                           ├─► _subq ─► pending (FIFO; retries and split halves jump the queue)
  resize(n), close() ──────┘  _ctl            │ dispatch: least-loaded ready worker,
                              wake socket     │ up to `prefetch` partitions each
                                              ▼
                                  per-worker in-flight FIFO ──── pipe (shm for big numpy) ──► serve():
                                  head = running, clock starts      ◄── OK / ERR / NOTE ─────  fault plan
                                              │                                               └► model(partition)
             connection.wait() on: pipes, process sentinels, wake socket   (no polling)
                                              │
       OK ──► fill the job's outputs ──► all items have an outcome ──► Future.set_result(PartitionResult)
       ERR (type in retry_on) / crash (sentinel) / timeout (clock) / memory (RSS watch):
              retry with full-jitter backoff ──► after `retries`: split in halves to isolate the
              failing items ──► a single item that still fails gets its Failure record
       dead or killed worker ──► replaced at once; only its head partition counts an attempt,
              the partitions queued behind it go back to the front of `pending`
       every event ──► on_event(Event)  (the engine never knows who listens)

Why hand-written rather than multiprocessing.Pool, ProcessPoolExecutor, pebble or loky: Pool hangs
or loses tasks when a worker dies, ProcessPoolExecutor breaks every pending future on one crash
(BrokenProcessPool), pebble and loky have per-task timeouts but no resize and cost 2-4x Pool's
dispatch; none isolates a poison item by splitting, none watches RSS. One pipe per worker (not a
shared queue) is what lets the supervisor know exactly which partition a dead worker held.

Guarantees (each has a test in tests/engine/): every item submitted yields exactly one outcome, in
order; a worker crash, hang or memory blow-up costs one attempt of one partition, never the pool;
no process or shared-memory segment outlives the engine, even if the caller is killed.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import multiprocessing as mp
import os
import queue
import random
import select
import signal
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from multiprocessing.connection import wait
from typing import Any

from tuner.engine import events as ev
from tuner.engine.config import EngineConfig, Failure
from tuner.engine.faults import SimulatedCrash
from tuner.engine.transport import PICKLED, Channel, SegmentPool, ensure_tracker
from tuner.engine.worker import (
    DIED,
    ERR,
    LOAD_ERR,
    NOTE,
    OK,
    READY,
    limit_threads,
    load_error_message,
    process_main,
    serve,
)
from tuner.errors import ConfigError, EngineClosed, ModelSpecError

#: after SIGTERM, a worker gets this long to exit before SIGKILL.
TERMINATE_GRACE_S = 0.5
#: on close, workers get this long to finish their partition and leave before being terminated.
STOP_GRACE_S = 2.0
#: how often the RSS watcher looks when a memory limit is set.
MEMORY_CHECK_S = 0.05
#: queue enough partitions per worker to cover this much of their service time (adaptive prefetch).
PREFETCH_COVER_S = 0.005
#: a worker that dies while loading the model this many times in a row ends the engine.
MAX_LOAD_CRASHES = 3

_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Runs before multiprocessing's own atexit hook (atexit is LIFO), which would otherwise wait
    # forever on workers that are still serving.
    for engine in list(_live_engines):
        engine.close(wait=False, cancel=True)


def default_start_method() -> str:
    """forkserver where the OS has it, else spawn; never fork (see module docstring of tuner.engine)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class PartitionResult:
    """The outcome of one submitted partition: one entry per item, in order.

    ``outputs`` is what the model returned (a list or array) when every item succeeded; when some
    failed for good it is a list with a :class:`Failure` in place of each failed item's output.
    """

    __slots__ = (
        "attempts",
        "failed",
        "first_item",
        "latency_s",
        "outputs",
        "service_s",
        "t_done",
        "t_submit",
    )

    def __init__(
        self,
        outputs: Sequence[Any],
        failed: int,
        first_item: int,
        t_submit: float,
        t_done: float,
        service_s: float,
        attempts: int,
    ) -> None:
        self.outputs = outputs
        self.failed = failed
        self.first_item = first_item
        self.t_submit = t_submit
        self.t_done = t_done
        self.latency_s = t_done - t_submit
        self.service_s = service_s
        self.attempts = attempts

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def __len__(self) -> int:
        return len(self.outputs)

    def failures(self) -> list[tuple[int, Failure]]:
        """(item index within the partition, failure) for each failed item."""
        if not self.failed:
            return []
        return [(i, o) for i, o in enumerate(self.outputs) if isinstance(o, Failure)]


class _Job:
    """One submit(): a future and the outcomes of its items, filled by one or more parts."""

    __slots__ = (
        "attempts",
        "failed",
        "first",
        "future",
        "id",
        "items",
        "n",
        "remaining",
        "service_s",
        "slots",
        "t",
    )

    def __init__(self, jid: int, items: Any, first: int, future: Future[PartitionResult], t: float) -> None:
        self.id = jid
        self.items = items
        self.n = len(items)
        self.first = first
        self.future = future
        self.t = t
        self.slots: list[Any] | None = None
        self.remaining = self.n
        self.failed = 0
        self.service_s = 0.0
        self.attempts = 0


class _Part:
    """A slice of a job sent to a worker; split in halves when it fails for good."""

    __slots__ = ("attempt", "exact", "first", "id", "items", "job", "n", "offset", "seg", "t_start", "total")

    def __init__(
        self, pid: int, job: _Job, offset: int, items: Any, total: int = 0, exact: bool = False
    ) -> None:
        self.id = pid
        self.job = job
        self.offset = offset
        self.items = items
        self.n = len(items)
        self.first = job.first + offset
        self.attempt = 0  # failed attempts at this size
        self.total = total  # failed attempts of these items, all sizes
        self.seg: Any = None
        self.t_start = 0.0
        # A worker may hold back results of tiny partitions to send several at once; a partition
        # re-run after a crash or timeout is "exact": sent alone, so the next death is charged to
        # the partition that really caused it.
        self.exact = exact


class _Worker:
    __slots__ = (
        "cause",
        "chan",
        "fn",
        "inbox",
        "inflight",
        "kill_at",
        "note",
        "pid",
        "proc",
        "ps",
        "ready",
        "replacing",
        "retiring",
        "t_spawn",
        "thread",
        "wid",
    )

    def __init__(self, wid: int, replacing: int | None) -> None:
        self.wid = wid
        self.replacing = replacing
        self.proc: Any = None
        self.chan: Channel | None = None
        self.thread: threading.Thread | None = None
        self.inbox: queue.SimpleQueue[Any] | None = None
        self.fn: Callable[[Any], Any] | None = None  # inline backend
        self.pid = 0
        self.inflight: deque[_Part] = deque()
        self.ready = False
        self.retiring = False
        self.cause: str | None = None  # set when we decided to stop or kill it
        self.note: str | None = None  # an injected fault the worker announced
        self.kill_at = 0.0
        self.t_spawn = time.perf_counter()
        self.ps: Any = None


class Engine:
    """Runs a model on ``config.workers`` workers; the only thing in tuner that runs a model.

    Use as a context manager, or call :meth:`start` and :meth:`close`. ``model`` is a spec string
    (``builtin:mlp``, ``pkg.mod:fn``, ``file.py:fn``) or a picklable callable; each worker loads it
    once. ``on_event`` receives :mod:`tuner.engine.events` from the supervisor thread.
    """

    def __init__(
        self,
        model: Any,
        config: EngineConfig | None = None,
        on_event: Callable[[ev.Event], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self._cb = on_event
        from tuner.models import spec_text

        self._label = spec_text(model)
        c = self.config
        # Partitions queued per worker adapt to the service time (see _adapt_prefetch): deep for tiny
        # partitions, whose cost is the round trip; shallow for long ones, so one slow worker never
        # holds many partitions hostage.
        self._prefetch = 1 if c.backend == "inline" else min(2, c.prefetch)
        self._svc_ewma = 0.0
        self._retry_on = frozenset(c.retry_on)
        self._rng = random.Random(c.faults.seed)
        self._target = 1 if c.backend == "inline" else c.workers
        # shared with callers
        self._subq: deque[_Job] = deque()
        self._ctl: deque[tuple[str, Any]] = deque()
        self._outbox: deque[tuple[_Worker, Any]] = deque()
        self._waiting = False
        self._lock = threading.Lock()
        self._outstanding: set[Future[PartitionResult]] = set()
        self._ids = itertools.count()
        self._next_item = 0
        self._started = False
        self._closed = False
        self._ready_evt = threading.Event()
        self._start_error: BaseException | None = None
        self._broken: str | None = None
        # supervisor-only
        self._pending: deque[_Part] = deque()
        self._retry_heap: list[tuple[float, int, _Part]] = []
        self._workers: list[_Worker] = []
        self._dying: list[_Worker] = []
        self._wids = itertools.count(1)
        self._poller = _Poller()
        self._unflushed: list[_Worker] = []
        self._wait_dirty = True
        self._load_crashes = 0
        self._segments = SegmentPool()
        self._thread_limits: Any = None
        self._next_sample = 0.0
        self._next_memcheck = 0.0
        self._thread: threading.Thread | None = None
        self._ctx: Any = None
        self._env: dict[str, str] | None = None
        self._alive_r: Any = None
        self._alive_w: Any = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # counters for stats()
        self.items_done = 0
        self.items_failed = 0
        self.retried = 0
        self.replaced = 0

    # ------------------------------------------------------------------ public API
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(wait=exc_type is None, cancel=exc_type is not None)

    @property
    def workers(self) -> int:
        """The number of workers the engine aims to run (after resize)."""
        return self._target

    def start(self) -> Engine:
        """Start the workers and wait until every one has loaded the model.

        Raises ModelSpecError (after cleaning up) if the model fails to load in a worker.
        """
        if self._started:
            return self
        self._started = True
        c = self.config
        if c.backend == "process":
            method = c.start_method or default_start_method()
            if method == "fork":
                raise ConfigError("start method 'fork' is not supported: use forkserver or spawn")
            self._ctx = mp.get_context(method)
            if method == "forkserver":
                self._ctx.set_forkserver_preload(
                    ["tuner.engine.worker", "tuner.models", "numpy", "threadpoolctl"]
                )
            ensure_tracker()
            self._env = dict(os.environ)
            self._alive_r, self._alive_w = self._ctx.Pipe(duplex=False)
        else:
            self._thread_limits = limit_threads(c.threads_per_worker)
        _live_engines.add(self)
        self._thread = threading.Thread(target=self._run, name="tuner-supervisor", daemon=True)
        self._thread.start()
        self._ready_evt.wait()
        if self._start_error is not None:
            self.close(wait=False, cancel=True)
            raise self._start_error
        return self

    def submit(self, items: Any, first_item: int | None = None) -> Future[PartitionResult]:
        """Run one partition (a list or array of items); the future gives a PartitionResult.

        ``first_item`` is the index of the first item in the caller's stream (fault decisions are
        keyed by it); by default items are numbered in submission order.
        """
        return self.submit_many([items], first_item)[0]

    def submit_many(
        self, partitions: Sequence[Any], first_item: int | None = None
    ) -> list[Future[PartitionResult]]:
        """Submit several partitions at once: one wake-up of the supervisor, one write per worker."""
        if self._closed:
            raise EngineClosed("the engine is closed")
        if not self._started:
            self.start()
        if self._broken is not None:
            raise ModelSpecError(self._broken)
        futures: list[Future[PartitionResult]] = []
        jobs = []
        first = self._next_item if first_item is None else first_item
        now = time.perf_counter()
        for items in partitions:
            n = len(items)
            fut: Future[PartitionResult] = Future()
            futures.append(fut)
            job = _Job(next(self._ids), items, first, fut, now)
            first += n
            if n == 0:
                fut.set_result(PartitionResult(items, 0, job.first, now, now, 0.0, 0))
            else:
                jobs.append(job)
        self._next_item = max(self._next_item, first)
        if jobs:
            with self._lock:
                self._outstanding.update(j.future for j in jobs)
            self._subq.extend(jobs)
            if self._waiting:
                self._poke()
        return futures

    def map_partitions(
        self, items: Iterable[Any], partition_size: int | None = None, window: int | None = None
    ) -> Iterator[PartitionResult]:
        """Partition ``items``, keep a bounded window in flight, yield results in input order.

        The window is refilled in bursts (when half of it has drained), so the supervisor wakes once
        per burst rather than once per partition.
        """
        size = partition_size or self.config.partition_size
        chunks = partitions(items, size)
        pending: deque[Future[PartitionResult]] = deque()
        exhausted = False
        try:
            while True:
                limit = window or max(8, 2 * self._target * (self._prefetch + 2))
                if not exhausted and len(pending) <= limit // 2:
                    room = limit - len(pending)
                    burst = list(itertools.islice(chunks, room))
                    exhausted = len(burst) < room
                    if burst:
                        pending.extend(self.submit_many(burst))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for f in pending:  # the caller stopped early: what has not started never will
                f.cancel()

    def map(self, items: Iterable[Any], partition_size: int | None = None) -> Iterator[Any]:
        """One outcome per item, in input order: its output, or a :class:`Failure`."""
        for result in self.map_partitions(items, partition_size):
            yield from result.outputs

    def resize(self, workers: int) -> None:
        """Change the number of workers while running; no item is lost or duplicated."""
        if workers < 1:
            raise ConfigError(f"workers must be >= 1 (got {workers})")
        if self.config.backend == "inline":
            return
        old = self._target
        self._target = workers
        self._ctl.append(("resize", workers))
        self._poke()
        if self._cb is not None and old != workers:
            self._cb(ev.Resized(time.perf_counter(), old, workers))

    def stats(self) -> dict[str, Any]:
        """A cheap snapshot: workers, backlog (partitions waiting or running), counters."""
        return {
            "workers": self._target,
            "live_workers": sum(1 for w in self._workers if w.ready and not w.retiring),
            "backlog": len(self._outstanding),
            "items_done": self.items_done,
            "items_failed": self.items_failed,
            "retried": self.retried,
            "replaced": self.replaced,
        }

    def backlog(self) -> int:
        """Partitions submitted and not yet complete."""
        return len(self._outstanding)

    def close(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop the engine. ``wait``: let submitted partitions finish first. ``cancel``: cancel them.

        Always leaves no worker process and no shared-memory segment behind.
        """
        if self._closed:
            return
        if wait and not cancel and self._thread is not None and self._thread.is_alive():
            with self._lock:
                outstanding = list(self._outstanding)
            for f in outstanding:
                try:
                    f.exception()
                except BaseException:
                    pass
        self._closed = True
        self._ctl.append(("stop", cancel or not wait))
        self._poke()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        _live_engines.discard(self)
        if self._thread_limits is not None:
            self._thread_limits.restore_original_limits()
            self._thread_limits = None
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------ supervisor
    def _poke(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # buffer full means a wake-up is already pending; closed means we are done

    def _emit(self, event: ev.Event) -> None:
        if self._cb is not None:
            self._cb(event)

    def _run(self) -> None:
        cancel = True
        try:
            for _ in range(self._target):
                self._spawn(None)
            cancel = self._loop()
        except BaseException as e:
            if not self._ready_evt.is_set():
                self._start_error = e
            self._broken = self._broken or f"engine supervisor failed: {type(e).__name__}: {e}"
        finally:
            self._shutdown(cancel)
            self._ready_evt.set()

    def _loop(self) -> bool:
        perf = time.perf_counter
        while True:
            while self._ctl:
                what, arg = self._ctl.popleft()
                if what == "stop":
                    return bool(arg)
                if what == "resize":
                    self._apply_resize(arg)
            if self._subq:
                self._take_submissions()
            if self._pending:
                self._dispatch()
            if self._unflushed:
                self._flush()
            if self._wait_dirty:
                self._rebuild_waitmap()
            self._waiting = True
            if self._subq or self._ctl or self._outbox:
                ready: list[tuple[str, _Worker | None]] = []
            else:
                ready = self._poller.wait(self._timeout(perf()))
            self._waiting = False
            for kind, w in ready:
                if kind == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                elif kind == "chan" and w is not None:
                    self._read(w)
                elif kind == "sentinel" and w is not None:
                    self._on_exit(w)
            while self._outbox:
                w, msg = self._outbox.popleft()
                self._on_message(w, msg)
            now = perf()
            if self.config.timeout_s is not None and self.config.backend != "inline":
                self._check_timeouts(now)
            if self._retry_heap and self._retry_heap[0][0] <= now:
                self._release_retries(now)
            if self._dying:
                self._check_kills(now)
            if self.config.memory_limit_mb is not None and now >= self._next_memcheck:
                self._check_memory(now)
            if self._cb is not None and now >= self._next_sample:
                self._sample(now)

    def _timeout(self, now: float) -> float | None:
        deadlines: list[float] = []
        t = self.config.timeout_s
        if t is not None:
            for w in self._workers:
                if w.inflight and w.cause is None:
                    deadlines.append(w.inflight[0].t_start + t)
        if self._retry_heap:
            deadlines.append(self._retry_heap[0][0])
        for w in self._dying:
            deadlines.append(w.kill_at)
        if self.config.memory_limit_mb is not None:
            deadlines.append(self._next_memcheck)
        if self._cb is not None:
            deadlines.append(self._next_sample)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _rebuild_waitmap(self) -> None:
        m: dict[Any, tuple[str, _Worker | None]] = {self._wake_r: ("wake", None)}
        for w in self._workers:
            if w.proc is not None:
                if w.chan is not None:
                    m[w.chan] = ("chan", w)
                m[w.proc.sentinel] = ("sentinel", w)
        for w in self._dying:
            if w.proc is not None:
                m[w.proc.sentinel] = ("sentinel", w)
        self._poller.assign(m)
        self._wait_dirty = False

    def _flush(self) -> None:
        """Write what is queued for each worker; what a busy worker's socket can't take waits for POLLOUT."""
        still = []
        for w in self._unflushed:
            if w.chan is None or w.cause is not None:
                continue
            try:
                if not w.chan.flush():
                    still.append(w)
            except OSError:
                pass  # the worker is gone; its sentinel fires and its partitions are re-run
        self._unflushed = still
        self._poller.want_write({w.chan for w in still if w.chan is not None})

    # -- workers --------------------------------------------------------------------------------
    def _spawn(self, replacing: int | None) -> _Worker:
        w = _Worker(next(self._wids), replacing)
        c = self.config
        if c.backend == "process":
            parent, child = socket.socketpair()
            proc = self._ctx.Process(
                target=process_main,
                args=(child, self._alive_r, self.model, c.threads_per_worker, c.faults, self._env),
                name=f"tuner-worker-{w.wid}",
                daemon=False,
            )
            proc.start()
            child.close()
            w.proc, w.chan, w.pid = proc, Channel(parent), proc.pid
        elif c.backend == "thread":
            w.inbox = queue.SimpleQueue()
            w.thread = threading.Thread(
                target=self._thread_main, args=(w,), name=f"tuner-worker-{w.wid}", daemon=True
            )
            w.thread.start()
        else:
            from tuner.models import load_model

            try:
                w.fn = load_model(self.model)
            except BaseException as e:
                self._outbox.append((w, (LOAD_ERR, load_error_message(e))))
            else:
                self._outbox.append((w, (READY, 0, time.perf_counter() - w.t_spawn)))
        self._workers.append(w)
        self._wait_dirty = True
        return w

    def _thread_main(self, w: _Worker) -> None:
        assert w.inbox is not None
        try:
            from tuner.models import load_model

            fn = load_model(self.model)
        except BaseException as e:
            self._post(w, (LOAD_ERR, load_error_message(e)))
            return
        self._post(w, (READY, threading.get_native_id(), time.perf_counter() - w.t_spawn))
        try:
            serve(
                w.inbox.get,
                lambda m, *_: self._post(w, m),
                fn,
                self.config.faults,
                in_process=False,
                label=self._label,
            )
        except SimulatedCrash:
            self._post(w, (DIED, "injected crash"))
        except BaseException as e:
            self._post(w, (DIED, f"{type(e).__name__}: {e}"))

    def _post(self, w: _Worker, msg: Any) -> None:
        self._outbox.append((w, msg))
        if self._waiting:
            self._poke()

    def _live(self) -> list[_Worker]:
        return [w for w in self._workers if w.cause is None]

    def _apply_resize(self, n: int) -> None:
        active = [w for w in self._workers if w.cause is None and not w.retiring]
        if n > len(active):
            for _ in range(n - len(active)):
                self._spawn(None)
        elif n < len(active):
            # Retire the least busy first; they take no new work and stop once drained.
            for w in sorted(active, key=lambda w: len(w.inflight))[: len(active) - n]:
                w.retiring = True
                if not w.inflight:
                    self._stop_worker(w, "retired")

    def _stop_worker(self, w: _Worker, cause: str) -> None:
        """Ask an idle worker to leave (it is not replaced)."""
        w.cause = cause
        if w.proc is not None:
            self._queue(w, None)
            w.kill_at = time.perf_counter() + STOP_GRACE_S
            self._workers.remove(w)
            self._dying.append(w)
        else:
            if w.inbox is not None:
                w.inbox.put(None)
            self._workers.remove(w)
            self._emit(ev.WorkerExited(time.perf_counter(), w.wid, w.pid, cause))
        self._wait_dirty = True

    def _kill(self, w: _Worker, cause: str, now: float, hard: bool = False) -> None:
        """End a worker we gave up on (timeout, memory); its head partition fails one attempt."""
        w.cause = cause
        self._workers.remove(w)
        self._wait_dirty = True
        injected = w.note in ("hang", "memory")
        if w.proc is not None:
            try:
                (w.proc.kill if hard else w.proc.terminate)()
            except (OSError, ValueError):
                pass
            w.kill_at = now + TERMINATE_GRACE_S
            self._dying.append(w)
        else:
            if w.inbox is not None:
                w.inbox.put(None)  # a hung thread cannot be killed; it is abandoned and exits when it wakes
            self._emit(ev.WorkerExited(now, w.wid, w.pid, cause, injected=injected))
        limit = self.config.memory_limit_mb
        if cause == "timeout":
            message = f"partition timed out after {self.config.timeout_s:g} s"
        else:
            message = f"worker exceeded its memory limit of {limit:g} MB"
        self._orphan_inflight(w, cause, message, injected=injected)
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        self.replaced += 1
        active = sum(1 for x in self._workers if x.cause is None and not x.retiring)
        if active < self._target:
            self._spawn(w.wid)

    def _orphan_inflight(self, w: _Worker, cause: str, message: str, **details: Any) -> None:
        if not w.inflight:
            return
        head = w.inflight.popleft()
        head.exact = True
        # Partitions queued behind the head never started (or their results were held back for
        # batching and lost): they go back, no attempt counted, and run exact from now on.
        while w.inflight:
            part = w.inflight.pop()
            part.exact = True
            self._release(part)
            self._pending.appendleft(part)
        self._attempt_failed(head, cause, message, worker=w.wid, **details)

    def _on_exit(self, w: _Worker) -> None:
        """A worker process's sentinel fired: it is gone."""
        if w.cause is not None:  # we stopped or killed it (reap it), or its death was handled already
            if w in self._dying:
                self._reap(w)
            return
        # Results it sent before dying are still in the pipe: take them first.
        self._read(w, draining=True)
        if w.cause is not None:
            return
        w.proc.join(1.0)
        code = w.proc.exitcode
        self._on_death(w, code, _signal_name(code))

    def _on_death(self, w: _Worker, code: int | None, sig: str | None, note: str | None = None) -> None:
        injected = w.note == "crash"
        w.cause = "crash"
        if w in self._workers:
            self._workers.remove(w)
        self._wait_dirty = True
        how = f"killed by {sig}" if sig else (note or f"exit code {code}")
        now = time.perf_counter()
        self._emit(ev.WorkerExited(now, w.wid, w.pid, "crash", code, sig, injected))
        self._close_conn(w)
        if not w.ready:
            self._load_crashes += 1
            if self._load_crashes >= MAX_LOAD_CRASHES:
                self._break(f"worker died while loading the model ({how}), {MAX_LOAD_CRASHES} times in a row")
                return
        message = f"worker {w.wid} (pid {w.pid}) crashed: {how}"
        self._orphan_inflight(w, "crash", message, exitcode=code, signal=sig, injected=injected)
        self._replace(w)

    def _reap(self, w: _Worker) -> None:
        if w.proc is not None:
            w.proc.join(0.05)
            if w.proc.exitcode is None:
                return  # sentinel raced; check again later
            code = w.proc.exitcode
            sig = (
                signal.Signals(-code).name
                if code < 0 and -code in signal.Signals._value2member_map_
                else None
            )
            self._emit(
                ev.WorkerExited(
                    time.perf_counter(), w.wid, w.pid, w.cause or "closed", code, sig, w.note is not None
                )
            )
            self._close_conn(w)
            w.proc.close()
        if w in self._dying:
            self._dying.remove(w)
        self._wait_dirty = True

    def _close_conn(self, w: _Worker) -> None:
        if w.chan is not None:
            w.chan.close()

    def _check_kills(self, now: float) -> None:
        for w in list(self._dying):
            if w.proc is not None and w.proc.exitcode is not None:
                self._reap(w)
            elif now >= w.kill_at:
                try:
                    w.proc.kill()
                except (OSError, ValueError):
                    pass
                w.kill_at = now + 5.0

    def _check_timeouts(self, now: float) -> None:
        limit = self.config.timeout_s
        assert limit is not None
        for w in list(self._workers):
            if w.inflight and w.cause is None and now - w.inflight[0].t_start > limit:
                self._kill(w, "timeout", now)

    def _check_memory(self, now: float) -> None:
        import psutil

        self._next_memcheck = now + MEMORY_CHECK_S
        limit = self.config.memory_limit_mb
        assert limit is not None
        for w in list(self._workers):
            if w.proc is None or not w.pid or w.cause is not None:
                continue
            try:
                if w.ps is None:
                    w.ps = psutil.Process(w.pid)
                rss = w.ps.memory_info().rss
            except psutil.Error:
                continue
            if rss > limit * 1024 * 1024:
                self._kill(w, "memory", now, hard=True)

    def _sample(self, now: float) -> None:
        import psutil

        self._next_sample = now + self.config.sample_interval_s
        samples = []
        for w in self._workers:
            if w.proc is None or not w.pid:
                continue
            try:
                if w.ps is None:
                    w.ps = psutil.Process(w.pid)
                with w.ps.oneshot():
                    samples.append(
                        ev.WorkerSample(w.wid, w.pid, w.ps.cpu_percent(None), w.ps.memory_info().rss)
                    )
            except psutil.Error:
                continue
        self._emit(ev.ResourceSample(now, tuple(samples)))

    # -- messages -------------------------------------------------------------------------------
    def _read(self, w: _Worker, draining: bool = False) -> None:
        assert w.chan is not None
        try:
            for msg in w.chan.receive():
                if w.cause is not None:
                    break
                self._on_message(w, msg)
        except (EOFError, OSError):
            if not draining and w.cause is None:
                # The pipe closed: the process is exiting; its sentinel tells us how.
                w.proc.join(1.0)
                self._on_exit(w)

    def _on_message(self, w: _Worker, msg: Any) -> None:
        if w.cause is not None and msg[0] != DIED:
            return  # a worker we abandoned (a hung thread waking up): its word no longer counts
        tag = msg[0]
        now = time.perf_counter()
        if tag == OK:
            part = w.inflight.popleft()
            w.note = None
            self._next_head(w, now)
            self._finished(w, part, msg[2], msg[3], now)
        elif tag == ERR:
            part = w.inflight.popleft()
            w.note = None
            self._next_head(w, now)
            self._release(part)
            part.job.service_s += msg[5]
            self._attempt_failed(
                part,
                "exception",
                f"{msg[2]}: {msg[3]}",
                worker=w.wid,
                exc_type=msg[2],
                traceback=msg[4],
                injected=msg[2] == "InjectedFault",
            )
        elif tag == NOTE:
            w.note = msg[2]
        elif tag == READY:
            w.ready = True
            if msg[1]:
                w.pid = msg[1]
            self._load_crashes = 0
            self._emit(ev.WorkerStarted(now, w.wid, w.pid, now - w.t_spawn, w.replacing))
            if not self._ready_evt.is_set() and all(x.ready for x in self._workers):
                self._ready_evt.set()
        elif tag == LOAD_ERR:
            w.cause = "load"
            self._break(msg[1])
        elif tag == DIED:
            if w.cause is None:
                self._on_death(w, None, None, note=msg[1])
        if w.retiring and not w.inflight and w.cause is None:
            self._stop_worker(w, "retired")

    def _next_head(self, w: _Worker, now: float) -> None:
        if w.inflight:
            head = w.inflight[0]
            head.t_start = now
            if self._cb is not None:
                self._cb(ev.PartitionStarted(now, head.id, w.wid, head.attempt + 1, head.n))

    def _break(self, message: str) -> None:
        """The model cannot load: fail everything with that one line; further submits raise."""
        self._broken = message
        if not self._ready_evt.is_set():
            self._start_error = ModelSpecError(message)
            self._ready_evt.set()
        for part in self._all_parts():
            self._release(part)
            self._fill_failure(part, Failure("load", message, part.total))
        self._pending.clear()
        self._retry_heap.clear()
        for w in list(self._workers):
            w.inflight.clear()
            if w.cause is None or w.cause == "load":
                w.cause = "load"
                if w.proc is not None:
                    try:
                        w.proc.terminate()
                    except (OSError, ValueError):
                        pass
                    w.kill_at = time.perf_counter() + TERMINATE_GRACE_S
                    self._dying.append(w)
                elif w.inbox is not None:
                    w.inbox.put(None)
        self._workers.clear()
        self._wait_dirty = True

    def _all_parts(self) -> list[_Part]:
        parts = list(self._pending) + [p for _, _, p in self._retry_heap]
        for w in self._workers:
            parts.extend(w.inflight)
        return parts

    # -- dispatch and outcomes --------------------------------------------------------------------
    def _take_submissions(self) -> None:
        cb = self._cb
        while self._subq:
            job = self._subq.popleft()
            if self._broken is not None:
                job.future.set_exception(ModelSpecError(self._broken))
                self._forget(job.future)
                continue
            self._pending.append(_Part(job.id, job, 0, job.items))
            if cb is not None:
                cb(ev.PartitionSubmitted(job.t, job.id, job.n))

    def _dispatch(self) -> None:
        ws = [w for w in self._workers if w.ready and w.cause is None and not w.retiring]
        if not ws:
            return
        prefetch = self._prefetch
        pending = self._pending
        while pending:
            best = ws[0]
            for w in ws:
                if len(w.inflight) < len(best.inflight):
                    best = w
            if len(best.inflight) >= prefetch:
                return
            part = pending.popleft()
            if part.job.future.cancelled():  # cancelled before it ran: drop it
                self._release(part)
                self._forget(part.job.future)
                continue
            self._send(best, part)

    def _send(self, w: _Worker, part: _Part) -> None:
        now = time.perf_counter()
        first_in_line = not w.inflight
        if first_in_line:
            part.t_start = now
        w.inflight.append(part)
        if first_in_line and self._cb is not None:
            self._cb(ev.PartitionStarted(now, part.id, w.wid, part.attempt + 1, part.n))
        if w.proc is not None:
            kind, payload, part.seg = self._segments.pack(part.items)
            self._queue(w, (part.id, part.attempt + 1, part.first, kind, payload, part.exact))
        elif w.inbox is not None:
            w.inbox.put((part.id, part.attempt + 1, part.first, PICKLED, part.items, False))
        else:
            self._run_inline(w, part)

    def _run_inline(self, w: _Worker, part: _Part) -> None:
        assert w.fn is not None
        msgs = iter(((part.id, part.attempt + 1, part.first, PICKLED, part.items, False), None))
        try:
            serve(
                msgs.__next__,
                lambda m, *_: self._outbox.append((w, m)),
                w.fn,
                self.config.faults,
                in_process=False,
            )
        except SimulatedCrash:
            self._outbox.append((w, (DIED, "injected crash")))

    def _queue(self, w: _Worker, msg: Any) -> None:
        assert w.chan is not None
        if not w.chan.pending:
            self._unflushed.append(w)
        w.chan.queue(msg)

    def _release(self, part: _Part) -> None:
        if part.seg is not None:
            self._segments.release(part.seg)
            part.seg = None

    def _adapt_prefetch(self, service_s: float) -> None:
        self._svc_ewma = service_s if self._svc_ewma == 0.0 else 0.9 * self._svc_ewma + 0.1 * service_s
        # Enough queued work to cover ~5 ms of round trips, between 2 and config.prefetch.
        depth = 1 + int(PREFETCH_COVER_S / max(self._svc_ewma, 1e-6))
        self._prefetch = max(min(2, self.config.prefetch), min(self.config.prefetch, depth))

    def _finished(self, w: _Worker, part: _Part, out: Any, service_s: float, now: float) -> None:
        self._release(part)
        if self.config.backend != "inline":
            self._adapt_prefetch(service_s)
        job = part.job
        job.service_s += service_s
        job.attempts = max(job.attempts, part.total + 1)
        if part.n == job.n:
            job.remaining = 0
            self._complete(job, out, now)
        else:
            if job.slots is None:
                job.slots = [None] * job.n
            job.slots[part.offset : part.offset + part.n] = list(out)
            job.remaining -= part.n
            if job.remaining == 0:
                self._complete(job, job.slots, now)
        self.items_done += part.n
        if self._cb is not None:
            self._cb(
                ev.PartitionFinished(now, part.id, w.wid, part.attempt + 1, part.n, service_s, now - job.t)
            )

    def _attempt_failed(
        self, part: _Part, cause: str, message: str, worker: int = -1, **details: Any
    ) -> None:
        part.attempt += 1
        part.total += 1
        now = time.perf_counter()
        c = self.config
        retryable = cause in ("crash", "timeout", "memory") or (
            cause == "exception" and details.get("exc_type") in self._retry_on
        )
        backoff = 0.0
        if retryable and part.attempt <= c.retries:
            backoff = c.backoff.delay(part.attempt, self._rng)
            heapq.heappush(self._retry_heap, (now + backoff, part.id, part))
            self.retried += 1
            decision = "retry"
        elif c.isolate and part.n > 1:
            mid = part.n // 2
            job = part.job
            left = _Part(next(self._ids), job, part.offset, part.items[:mid], part.total, part.exact)
            right = _Part(next(self._ids), job, part.offset + mid, part.items[mid:], part.total, part.exact)
            self._pending.appendleft(right)
            self._pending.appendleft(left)
            decision = "split"
        else:
            self._fill_failure(part, Failure(cause, message, part.total, **details))
            decision = "final"
        if self._cb is not None:
            self._cb(
                ev.PartitionFailed(
                    now,
                    part.id,
                    worker,
                    part.attempt,
                    part.n,
                    cause,
                    message,
                    decision,
                    bool(details.get("injected")),
                    backoff,
                )
            )
            if decision == "final":
                self._cb(ev.ItemsFailed(now, part.id, part.n, cause))

    def _fill_failure(self, part: _Part, failure: Failure) -> None:
        job = part.job
        if job.future.done():
            return
        if job.slots is None:
            job.slots = [None] * job.n
        job.slots[part.offset : part.offset + part.n] = [failure] * part.n
        job.failed += part.n
        job.remaining -= part.n
        self.items_failed += part.n
        job.attempts = max(job.attempts, part.total)
        if job.remaining == 0:
            self._complete(job, job.slots, time.perf_counter())

    def _complete(self, job: _Job, outputs: Sequence[Any], now: float) -> None:
        if not job.future.cancelled():  # the caller may cancel a future it no longer wants
            result = PartitionResult(outputs, job.failed, job.first, job.t, now, job.service_s, job.attempts)
            job.future.set_result(result)
        self._forget(job.future)

    def _forget(self, fut: Future[PartitionResult]) -> None:
        with self._lock:
            self._outstanding.discard(fut)

    def _release_retries(self, now: float) -> None:
        ready = []
        while self._retry_heap and self._retry_heap[0][0] <= now:
            ready.append(heapq.heappop(self._retry_heap)[2])
        for part in reversed(ready):
            self._pending.appendleft(part)

    # -- shutdown -------------------------------------------------------------------------------
    def _shutdown(self, cancel: bool) -> None:
        """Cancel what is left, stop every worker (SIGTERM, then SIGKILL), free shared memory."""
        for job in list(self._subq):
            self._pending.append(_Part(job.id, job, 0, job.items))
        self._subq.clear()
        for part in self._all_parts():
            self._release(part)
            if not part.job.future.done():
                part.job.future.cancel()
                self._forget(part.job.future)
        self._pending.clear()
        self._retry_heap.clear()
        procs = []
        for w in self._workers:
            w.inflight.clear()
            if w.proc is not None:
                if w.chan is not None:
                    w.chan.queue(None)
                    try:
                        w.chan.flush()
                    except OSError:
                        pass
                if cancel:
                    try:
                        w.proc.terminate()
                    except (OSError, ValueError):
                        pass
                procs.append(w)
            elif w.inbox is not None:
                w.inbox.put(None)
        procs.extend(self._dying)
        deadline = time.perf_counter() + (TERMINATE_GRACE_S if cancel else STOP_GRACE_S)
        for w in procs:
            w.proc.join(max(0.0, deadline - time.perf_counter()))
        for w in procs:
            if w.proc.exitcode is None:
                w.proc.terminate()
                w.proc.join(TERMINATE_GRACE_S)
            if w.proc.exitcode is None:
                w.proc.kill()
                w.proc.join()
            self._close_conn(w)
            self._emit(
                ev.WorkerExited(time.perf_counter(), w.wid, w.pid, w.cause or "closed", w.proc.exitcode)
            )
            w.proc.close()
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(0.5 if not cancel else 0.05)
        self._workers.clear()
        self._dying.clear()
        self._segments.close()
        if self._alive_w is not None:
            self._alive_w.close()
            self._alive_r.close()
        with self._lock:
            leftover = list(self._outstanding)
            self._outstanding.clear()
        for f in leftover:
            f.cancel()


class _Poller:
    """Waits on the supervisor's sockets and sentinels: a persistent poll set where the OS has poll()
    (multiprocessing.connection.wait builds a new selector on every call — a cost per partition),
    else connection.wait (Windows: sockets and process handles)."""

    def __init__(self) -> None:
        self._map: dict[Any, tuple[str, _Worker | None]] = {}
        self._by_fd: dict[int, tuple[str, _Worker | None]] = {}
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._writers: set[Any] = set()

    def assign(self, m: dict[Any, tuple[str, _Worker | None]]) -> None:
        self._map = m
        if self._poll is None:
            return
        for fd in self._by_fd:
            self._poll.unregister(fd)
        self._by_fd = {}
        for obj, what in m.items():
            fd = obj if isinstance(obj, int) else obj.fileno()
            self._by_fd[fd] = what
            self._poll.register(fd, select.POLLIN | (select.POLLOUT if obj in self._writers else 0))

    def want_write(self, chans: set[Any]) -> None:
        """Also wake when these channels can take more output (a worker's socket was full)."""
        if chans == self._writers:
            return
        self._writers = chans
        if self._poll is not None:
            for obj, _ in self._map.items():
                if isinstance(obj, Channel):
                    flags = select.POLLIN | (select.POLLOUT if obj in chans else 0)
                    self._poll.modify(obj.fileno(), flags)

    def wait(self, timeout: float | None) -> list[tuple[str, _Worker | None]]:
        if self._poll is None:
            return [self._map[o] for o in wait(list(self._map), timeout) if o in self._map]
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        out = []
        for fd, _ in self._poll.poll(ms):
            what = self._by_fd.get(fd)
            if what is not None:
                out.append(what)
        return out


def _signal_name(exitcode: int | None) -> str | None:
    """'SIGKILL' for a process killed by a signal (negative exit code), else None."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def partitions(items: Iterable[Any], size: int) -> Iterator[Any]:
    """Consecutive partitions of ``size`` items: views of arrays, slices of lists, lists otherwise."""
    if (
        hasattr(items, "__getitem__")
        and hasattr(items, "__len__")
        and not isinstance(items, (str, bytes, dict))
    ):
        seq: Any = items
        for i in range(0, len(seq), size):
            yield seq[i : i + size]
        return
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk
