"""The engine's public face: :class:`Engine` — submit, map, resize, stats, close — on a supervisor thread.

An Engine runs a model on a set of workers, item-exact through failures. This module is only what
callers touch; the work is done behind it (the data-flow diagram is at the top of
:mod:`~tuner.engine.supervisor`):

- :mod:`~tuner.engine.state`: the lifecycle flags (started, closed, finished, broken) behind one lock
  with named transitions, and the mailbox through which callers reach the supervisor;
- :mod:`~tuner.engine.supervisor`: the supervisor's thread — dispatch, the workers' messages,
  outcomes and failures, hedging, the end;
- :mod:`~tuner.engine.ledger` (jobs, parts, retries: pure, no I/O) and
  :mod:`~tuner.engine.hedging` (hedged stragglers' bookkeeping and budget: pure) — the task side;
- :mod:`~tuner.engine.workers`: the worker side — spawn, replace, retire, kill, reap, timeouts,
  the memory watch;
- :mod:`~tuner.engine.handles` (one class per backend), :mod:`~tuner.engine.transport` (framed
  sockets, shared memory, the poller), :mod:`~tuner.engine.worker` (the worker's loop).

Why hand-written rather than multiprocessing.Pool, ProcessPoolExecutor, pebble or loky: Pool hangs
or loses tasks when a worker dies, ProcessPoolExecutor breaks every pending future on one crash
(BrokenProcessPool), pebble and loky have per-task timeouts but no resize and cost 2-4x Pool's
dispatch; none isolates a poison item by splitting, none watches RSS. One channel per worker (not
a shared queue) is what lets the supervisor know exactly which partition a dead worker held. The
division inside follows theirs: pebble's pool manager combines a task manager and a worker
manager (here the ledger and :class:`~tuner.engine.workers.WorkerManager`), and loky keeps its
executor's flags in one small locked object (here :class:`~tuner.engine.state.EngineState`).

Guarantees (each has a test in tests/engine/): every item submitted yields exactly one outcome, in
order; a worker crash, hang or memory blow-up costs one attempt of one partition, never the pool;
no process — a worker, or one its model started — and no shared-memory segment outlives the
engine, even if the caller is killed; shared memory is released after every failure.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from tuner.engine import events as ev
from tuner.engine import live
from tuner.engine.config import EngineConfig
from tuner.engine.handles import default_start_method
from tuner.engine.ledger import Job, PartitionResult
from tuner.engine.state import EngineState, Mailbox
from tuner.engine.supervisor import Supervisor
from tuner.errors import ConfigError, EngineClosed

__all__ = ["Engine", "PartitionResult", "default_start_method", "partitions"]

log = logging.getLogger("tuner.engine")


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
        from tuner.models import spec_text

        self.model = model
        self._label = spec_text(model)
        self._state = EngineState()
        self._mailbox = Mailbox(self._state)
        self._emitter = ev.Emitter(on_event)
        self._next_item = 0
        self.config = config or EngineConfig()

    @property
    def config(self) -> EngineConfig:
        """How the engine runs the model. It may be replaced until the engine starts (a measurement
        varying one of the engine's own knobs); after that it is fixed."""
        return self._config

    @config.setter
    def config(self, config: EngineConfig) -> None:
        if self._state.started:
            raise ConfigError("an engine's config cannot change once it has started")
        self._config = config
        self._sup = Supervisor(self.model, self._label, config, self._state, self._mailbox, self._emitter)

    # ------------------------------------------------------------------ public API
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(wait=exc_type is None, cancel=exc_type is not None)

    @property
    def workers(self) -> int:
        """The number of workers the engine aims to run (after resize)."""
        return self._sup.workers.target

    @property
    def items_done(self) -> int:
        """Items whose output came back (cumulative)."""
        return self._sup.ledger.items_done

    @property
    def items_failed(self) -> int:
        """Items whose outcome is a failure record (cumulative)."""
        return self._sup.ledger.items_failed

    @property
    def retried(self) -> int:
        """Partition attempts retried (cumulative)."""
        return self._sup.ledger.retried

    @property
    def replaced(self) -> int:
        """Workers replaced after a crash, timeout or memory kill (cumulative)."""
        return self._sup.workers.replaced

    def start(self) -> Engine:
        """Start the workers and wait until every one has loaded the model.

        Raises ModelSpecError (after cleaning up) if the model fails to load in a worker, and
        EngineFailed if the workers cannot be started at all.
        """
        state = self._state
        if not state.mark_started():
            return self
        try:
            self._sup.workers.setup()
        except BaseException:
            state.mark_closed()
            raise
        live.add(self)
        self._sup.start()
        state.wait_start()
        if state.start_error is not None:
            self.close(wait=False, cancel=True)
            raise state.start_error
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
        state = self._state
        if state.closed:
            raise EngineClosed("the engine is closed")
        if not state.started:
            self.start()
        state.raise_if_broken()
        futures: list[Future[PartitionResult]] = []
        jobs = []
        first = self._next_item if first_item is None else first_item
        now = time.perf_counter()
        next_id = self._sup.ledger.next_id
        for items in partitions:
            n = len(items)
            fut: Future[PartitionResult] = Future()
            futures.append(fut)
            job = Job(next_id(), items, first, fut, now)
            first += n
            if n == 0:
                fut.set_result(PartitionResult(items, 0, job.first, now, now, 0.0, 0))
            else:
                jobs.append(job)
        self._next_item = max(self._next_item, first)
        if jobs:
            self._mailbox.deliver(jobs)
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
        sup = self._sup
        try:
            while True:
                limit = window or max(8, 2 * sup.workers.target * (sup.prefetch + 2))
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
        if not self.config.kind.pooled:
            return
        manager = self._sup.workers
        old = manager.target
        manager.target = workers  # at once, so that a replacement meanwhile already counts it
        self._mailbox.order("resize", workers)
        if self._emitter.listener is not None and old != workers:
            self._emitter.emit(ev.Resized(time.perf_counter(), old, workers))

    def stats(self) -> dict[str, Any]:
        """A cheap snapshot: workers, backlog (partitions waiting or running), counters; with hedging,
        hedges sent and won, and the duplicate work (hedges / partitions completed)."""
        sup = self._sup
        out = {
            "workers": sup.workers.target,
            "live_workers": sup.workers.live(),
            "backlog": self._mailbox.backlog(),
            "items_done": self.items_done,
            "items_failed": self.items_failed,
            "retried": self.retried,
            "replaced": self.replaced,
            "replaced_by": dict(sup.workers.replaced_by),
        }
        if sup.hedger is not None:
            out.update(sup.hedger.stats())
        return out

    def backlog(self) -> int:
        """Partitions submitted and not yet complete."""
        return self._mailbox.backlog()

    def close(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop the engine. ``wait``: let submitted partitions finish first. ``cancel``: cancel them.

        Always leaves no worker process, no process a model started, and no shared-memory segment
        behind.
        """
        if self._state.closed:
            return
        if wait and not cancel and self._sup.alive():
            for f in self._mailbox.snapshot():
                try:
                    f.exception()
                except BaseException:
                    pass
        if not self._state.mark_closed():
            self._sup.join()  # closed meanwhile by another thread: return once it is done
            return
        self._mailbox.order("stop", cancel or not wait)
        self._sup.join()
        self._sup.workers.release_shared()  # in the closing thread (see WorkerManager.release_shared)
        live.discard(self)
        self._mailbox.close()
        if self._emitter.errors > 1:
            log.error("the on_event listener raised %d times in all", self._emitter.errors)


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
