"""The engine: a supervisor thread that runs a model on a set of workers, item-exact through failures.

Data flow (every arrow on the right of the supervisor is one of its worker handles)::

  caller threads                    supervisor thread (owns everything below)                    workers
  ──────────────                    ─────────────────────────────────────────                    ───────
  submit(items) ─► Future  ┐
                           ├─► jobs ──► Ledger.pending (FIFO; retries and split halves jump the queue)
  resize(n), close() ──────┘  orders         │ dispatch: least-loaded ready handle,
                              wake socket    │ up to `prefetch` partitions each
                                             ▼
                                 handle.inflight (head = running) ── handle.send(part) ──► the worker:
                                                                                            serve():
            ProcessHandle: socket (shm for big numpy) + sentinel ─► Poller ◄── OK / ERR ──  fault plan
            ThreadHandle, InlineHandle, RayHandle: launch.post ─► Mailbox.posts ◄──────────  └► model()
                                             │
       OK ──► Ledger.finished: fill the job's outputs ──► all items have an outcome ──► Future result
       ERR / crash (sentinel or DIED) / timeout (head clock) / memory (RSS watch) ──► Ledger.failed:
              retry with full-jitter backoff ──► after `retries`: split in halves to isolate the
              failing items ──► a single item that still fails gets its Failure record
       dead or killed worker ──► replaced at once; only the partition it was running counts an
              attempt (a process worker names it in a shared slot: results held back for batching
              die with it), the others it held go back to the front (Ledger.put_back); once it
              has exited: its process group is killed, its shared memory released (handle.reap)
       a part running past the hedge delay ──► a second copy to an idle worker, within a token
              budget (Hedger); the first outcome wins, the loser runs out and is ignored
       every event ──► on_event(Event)  (the engine never knows who listens; a listener that
              raises is logged once and isolated)
       a bug in the supervisor itself ──► every open future fails with EngineFailed (traceback logged)

Why hand-written rather than multiprocessing.Pool, ProcessPoolExecutor, pebble or loky: Pool hangs
or loses tasks when a worker dies, ProcessPoolExecutor breaks every pending future on one crash
(BrokenProcessPool), pebble and loky have per-task timeouts but no resize and cost 2-4x Pool's
dispatch; none isolates a poison item by splitting, none watches RSS. One channel per worker (not
a shared queue) is what lets the supervisor know exactly which partition a dead worker held.

The pieces: :mod:`~tuner.engine.ledger` (jobs, parts, retries: pure, no I/O),
:mod:`~tuner.engine.hedging` (hedged stragglers' bookkeeping and budget: pure),
:mod:`~tuner.engine.state` (the lifecycle flags and the mailbox: what crosses threads),
:mod:`~tuner.engine.handles` (one class per backend), :mod:`~tuner.engine.transport` (framed
sockets, shared memory, the poller), :mod:`~tuner.engine.worker` (the worker's loop).

Guarantees (each has a test in tests/engine/): every item submitted yields exactly one outcome, in
order; a worker crash, hang or memory blow-up costs one attempt of one partition, never the pool;
no process — a worker, or one its model started — and no shared-memory segment outlives the
engine, even if the caller is killed; shared memory is released after every failure.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from tuner.engine import events as ev
from tuner.engine import live
from tuner.engine.config import EngineConfig, Failure
from tuner.engine.handles import EXITED, READABLE, Launch, WorkerHandle, default_start_method
from tuner.engine.hedging import Hedger
from tuner.engine.ledger import FINAL, IGNORED, Job, Ledger, Part, PartitionResult
from tuner.engine.state import EngineState, Mailbox
from tuner.engine.transport import Poller
from tuner.engine.worker import BOOT, DIED, ERR, LOAD_ERR, NOTE, OK, READY
from tuner.errors import ConfigError, EngineClosed, EngineFailed, ModelSpecError, TunerError

__all__ = ["Engine", "PartitionResult", "default_start_method", "partitions"]

log = logging.getLogger("tuner.engine")

#: after SIGTERM, a worker gets this long to exit before SIGKILL.
TERMINATE_GRACE_S = 0.5
#: on close, workers get this long to finish their partition and leave before being terminated.
STOP_GRACE_S = 2.0
#: how often the RSS watcher looks when a memory limit is set.
MEMORY_CHECK_S = 0.05
#: queue enough partitions per worker to cover this much of their service time (adaptive prefetch).
PREFETCH_COVER_S = 0.005
#: a worker that dies while starting or loading the model this many times in a row ends the engine.
MAX_LOAD_CRASHES = 3

_WAKE = 0  # the poller's answer for the wake socket

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
        self._emitter = ev.Emitter(on_event)
        self._cb = on_event
        self._emit = self._emitter.emit
        from tuner.models import spec_text

        self._label = spec_text(model)
        c = self.config
        kind = c.kind
        self._handle_cls: type[WorkerHandle] = kind.handle_class()
        # Partitions queued per worker adapt to the service time (see _adapt_prefetch): deep for tiny
        # partitions, whose cost is the round trip; shallow for long ones, so one slow worker never
        # holds many partitions hostage. A backend without a pool runs one partition at a time.
        self._prefetch = min(2, c.prefetch) if kind.pooled else 1
        self._adapts = kind.pooled
        self._svc_ewma = 0.0
        self._target = c.workers if kind.pooled else 1
        self._timeouts = c.timeout_s is not None and kind.can_time_out
        # shared with callers (tuner.engine.state): the lifecycle flags, and the supervisor's mailbox
        self._state = EngineState()
        self._mailbox = Mailbox(self._state)
        self._next_item = 0
        # supervisor-only
        self._ledger = Ledger(
            retries=c.retries,
            retry_on=c.retry_on,
            isolate=c.isolate,
            backoff=c.backoff,
            rng=random.Random(c.faults.seed),
            settled=self._mailbox.forget,
        )
        self._launch = Launch(model, self._label, c, self._mailbox.post)
        self._workers: list[WorkerHandle] = []
        self._dying: list[WorkerHandle] = []
        self._wids = itertools.count(1)
        self._poller = Poller()
        self._unflushed: list[WorkerHandle] = []
        self._wait_dirty = True
        self._load_crashes = 0
        self._next_sample = 0.0
        self._next_memcheck = 0.0
        self._thread: threading.Thread | None = None
        self.replaced = 0
        # Hedged stragglers (tuner.engine.hedging); an inline engine has one worker: nothing to hedge to.
        self._hedger: Hedger | None = None
        if c.hedge_after_s is not None and kind.pooled:
            self._hedger = Hedger(c.hedge_after_s, c.hedge_budget)

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

    @property
    def items_done(self) -> int:
        """Items whose output came back (cumulative)."""
        return self._ledger.items_done

    @property
    def items_failed(self) -> int:
        """Items whose outcome is a failure record (cumulative)."""
        return self._ledger.items_failed

    @property
    def retried(self) -> int:
        """Partition attempts retried (cumulative)."""
        return self._ledger.retried

    def start(self) -> Engine:
        """Start the workers and wait until every one has loaded the model.

        Raises ModelSpecError (after cleaning up) if the model fails to load in a worker, and
        EngineFailed if the workers cannot be started at all.
        """
        state = self._state
        if not state.mark_started():
            return self
        try:
            self._launch.shared = self._handle_cls.setup(self._launch)
        except BaseException:
            state.mark_closed()
            raise
        live.add(self)
        self._thread = threading.Thread(target=self._run, name="tuner-supervisor", daemon=True)
        self._thread.start()
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
        next_id = self._ledger.next_id
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
        if not self.config.kind.pooled:
            return
        old = self._target
        self._target = workers
        self._mailbox.order("resize", workers)
        if self._cb is not None and old != workers:
            self._emit(ev.Resized(time.perf_counter(), old, workers))

    def stats(self) -> dict[str, Any]:
        """A cheap snapshot: workers, backlog (partitions waiting or running), counters; with hedging,
        hedges sent and won, and the duplicate work (hedges / partitions completed)."""
        out = {
            "workers": self._target,
            "live_workers": sum(1 for w in list(self._workers) if w.ready and not w.retiring),
            "backlog": self._mailbox.backlog(),
            "items_done": self.items_done,
            "items_failed": self.items_failed,
            "retried": self.retried,
            "replaced": self.replaced,
        }
        if self._hedger is not None:
            out.update(self._hedger.stats())
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
        if wait and not cancel and self._thread is not None and self._thread.is_alive():
            for f in self._mailbox.snapshot():
                try:
                    f.exception()
                except BaseException:
                    pass
        if not self._state.mark_closed():
            self._join_supervisor()  # closed meanwhile by another thread: return once it is done
            return
        self._mailbox.order("stop", cancel or not wait)
        self._join_supervisor()
        live.discard(self)
        self._mailbox.close()
        if self._emitter.errors > 1:
            log.error("the on_event listener raised %d times in all", self._emitter.errors)

    def _join_supervisor(self) -> None:
        # Not from the supervisor's own thread: a listener may close the engine.
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # ------------------------------------------------------------------ supervisor
    def _run(self) -> None:
        cancel = True
        error: EngineFailed | None = None
        try:
            for _ in range(self._target):
                self._spawn(None)
            cancel = self._loop()
        except BaseException as e:
            log.error(
                "tuner's engine supervisor failed; every open partition fails with EngineFailed",
                exc_info=True,
            )
            error = EngineFailed(
                f"tuner's engine failed: {type(e).__name__}: {e} (a bug in tuner; traceback logged)"
            )
            self._state.mark_broken(error)
        finally:
            try:
                self._shutdown(cancel, error)
            except BaseException:
                log.error("tuner's engine failed while shutting down", exc_info=True)
                self._last_resort(error)
            finally:
                self._state.answer_start()

    def _loop(self) -> bool:
        perf = time.perf_counter
        ledger = self._ledger
        mailbox = self._mailbox
        jobs, orders, posts = mailbox.jobs, mailbox.orders, mailbox.posts
        while True:
            while orders:
                order, arg = orders.popleft()
                if order == "stop":
                    return bool(arg)
                if order == "resize":
                    self._apply_resize(arg)
            if jobs:
                self._take_submissions()
            if ledger.pending:
                self._dispatch()
            if self._hedger is not None and self._hedger.tokens >= 1.0:
                self._hedge(perf())
            # The wait map first: a worker that died since the last turn must be out of it before a
            # flush changes which sockets we wait to write to.
            if self._wait_dirty:
                self._rebuild_waitmap()
            if self._unflushed:
                self._flush()
            mailbox.waiting = True
            if jobs or orders or posts:
                ready: list[tuple[int, WorkerHandle | None]] = []
            else:
                ready = self._poller.wait(self._timeout(perf()))
            mailbox.waiting = False
            for what, w in ready:
                if what == _WAKE:
                    mailbox.drain_wake()
                elif w is None:
                    continue
                elif what == READABLE:
                    if w.cause is None:
                        self._read(w)
                elif what == EXITED:
                    self._on_exit(w)
            while posts:
                w, msg = posts.popleft()
                self._on_message(w, msg)
            now = perf()
            if self._timeouts:
                self._check_timeouts(now)
            due = ledger.next_retry()
            if due is not None and due <= now:
                ledger.release_due(now)
            if self._dying:
                self._check_kills(now)
            if self.config.memory_limit_mb is not None and now >= self._next_memcheck:
                self._check_memory(now)
            if self._cb is not None and now >= self._next_sample:
                self._sample(now)

    def _timeout(self, now: float) -> float | None:
        deadlines: list[float] = []
        t = self.config.timeout_s
        if self._timeouts and t is not None:
            for w in self._workers:
                if w.inflight and w.cause is None:
                    deadlines.append(w.t_head + t)
        due = self._ledger.next_retry()
        if due is not None:
            deadlines.append(due)
        for w in self._dying:
            deadlines.append(w.kill_at)
        if self._hedger is not None and self._hedger.tokens >= 1.0 and self._idle():
            due = self._hedger.next_due(self._running())
            if due is not None:
                deadlines.append(due)
        if self.config.memory_limit_mb is not None:
            deadlines.append(self._next_memcheck)
        if self._cb is not None:
            deadlines.append(self._next_sample)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _rebuild_waitmap(self) -> None:
        entries: list[tuple[Any, tuple[int, WorkerHandle | None]]] = [(self._mailbox.wake_r, (_WAKE, None))]
        for w in self._workers:
            entries.extend((obj, (what, w)) for obj, what in w.waitables())
        for w in self._dying:
            entries.extend((obj, (what, w)) for obj, what in w.waitables() if what == EXITED)
        self._poller.assign(entries)
        self._wait_dirty = False

    def _flush(self) -> None:
        """Write what is queued for each worker; what a busy worker's socket can't take waits for POLLOUT."""
        still = []
        for w in self._unflushed:
            if w.cause is not None:
                continue
            try:
                if not w.flush():
                    still.append(w)
            except OSError:
                pass  # the worker is gone; its sentinel fires and its partitions are re-run
        self._unflushed = still
        self._poller.want_write([w.out_waitable() for w in still])

    # -- workers --------------------------------------------------------------------------------
    def _spawn(self, replacing: int | None) -> WorkerHandle:
        w = self._handle_cls(next(self._wids), replacing, self._launch)
        self._workers.append(w)
        self._wait_dirty = True
        w.start()
        return w

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

    def _stop_worker(self, w: WorkerHandle, cause: str) -> None:
        """Ask an idle worker to leave (it is not replaced)."""
        w.cause = cause
        self._workers.remove(w)
        self._wait_dirty = True
        if w.stop():
            w.kill_at = time.perf_counter() + STOP_GRACE_S
            self._dying.append(w)
        else:
            self._emit(ev.WorkerExited(time.perf_counter(), w.wid, w.pid, cause))

    def _kill(self, w: WorkerHandle, cause: str, now: float, hard: bool = False) -> None:
        """End a worker we gave up on (timeout, memory); its head partition fails one attempt."""
        w.cause = cause
        self._workers.remove(w)
        self._wait_dirty = True
        injected = w.note in ("hang", "slow", "memory")
        if w.kill(hard):
            w.kill_at = now + TERMINATE_GRACE_S
            self._dying.append(w)
        else:  # a hung thread cannot be killed: it is abandoned
            self._emit(ev.WorkerExited(now, w.wid, w.pid, cause, injected=injected))
        if cause == "timeout":
            message = f"partition timed out after {self.config.timeout_s:g} s"
        else:
            message = f"worker exceeded its memory limit of {self.config.memory_limit_mb:g} MB"
            if not w.ready:  # while loading the model: its replacement would do the same, forever
                self._load_crashes += 1
                if self._load_crashes >= MAX_LOAD_CRASHES:
                    self._break(
                        f"{message} while loading the model, {MAX_LOAD_CRASHES} times in a row",
                        ConfigError,
                    )
                    return
        self._orphan_inflight(w, cause, message, now, injected=injected)
        self._replace(w)

    def _replace(self, w: WorkerHandle) -> None:
        self.replaced += 1
        active = sum(1 for x in self._workers if x.cause is None and not x.retiring)
        if active < self._target:
            self._spawn(w.wid)

    def _orphan_inflight(self, w: WorkerHandle, cause: str, message: str, now: float, **details: Any) -> None:
        """A worker was lost: the partition it was running fails one attempt; the others it held go
        back to the front of the queue, no attempt counted, and run exact from now on (they never
        started, or their results were held back for batching and died with it)."""
        if not w.inflight:
            return
        running = w.running_id()
        if running is None:  # the backend cannot tell: the oldest is the one running
            culprit: Part | None = w.inflight[0]
        else:
            culprit = next((p for p in w.inflight if p.id == running), None)
        ledger = self._ledger
        while w.inflight:
            part = w.inflight.pop()
            if part is not culprit:
                ledger.put_back(part)
                if self._hedger is not None and self._hedger.hedged(part):
                    self._hedge_ended(w, part, False, now)
        if culprit is not None:  # None: it died between partitions, which none of them caused
            culprit.exact = True
            self._failed(w, culprit, cause, message, now, **details)

    def _on_exit(self, w: WorkerHandle) -> None:
        """A worker process's sentinel fired: it is gone."""
        if w.cause is not None:  # we stopped or killed it (reap it), or its death was handled already
            if w in self._dying:
                self._reap(w)
            return
        # Results it sent before dying are still in its socket: take them first.
        self._read(w, draining=True)
        if w.cause is not None:
            return
        w.join(1.0)
        status = w.exit_status()
        if status is None:  # it closed its socket but lives on: it is no worker of ours any more
            w.kill(hard=True)
            w.join(5.0)
            status = w.exit_status()
        code, sig = status or (None, None)
        self._on_death(w, code, sig)

    def _on_death(self, w: WorkerHandle, code: int | None, sig: str | None, note: str | None = None) -> None:
        injected = w.note == "crash"
        w.cause = "crash"
        if w in self._workers:
            self._workers.remove(w)
        self._wait_dirty = True
        how = f"killed by {sig}" if sig else (note or f"exit code {code}")
        now = time.perf_counter()
        self._emit(ev.WorkerExited(now, w.wid, w.pid, "crash", code, sig, injected))
        w.reap()
        if not w.ready:
            self._load_crashes += 1
            if self._load_crashes >= MAX_LOAD_CRASHES:
                if w.booted:
                    self._break(
                        f"worker died while loading the model ({how}), {MAX_LOAD_CRASHES} times in a row",
                        ModelSpecError,
                    )
                else:
                    self._break(
                        f"worker processes exit before they can load the model ({how}), "
                        f"{MAX_LOAD_CRASHES} times in a row; their error is on stderr",
                        EngineFailed,
                    )
                return
        message = f"worker {w.wid} (pid {w.pid}) crashed: {how}"
        self._orphan_inflight(w, "crash", message, now, exitcode=code, signal=sig, injected=injected)
        self._replace(w)

    def _reap(self, w: WorkerHandle) -> None:
        status = w.exit_status()
        if status is None:
            return  # sentinel raced; check again later
        code, sig = status
        w.reap()
        self._emit(
            ev.WorkerExited(
                time.perf_counter(), w.wid, w.pid, w.cause or "closed", code, sig, w.note is not None
            )
        )
        if w in self._dying:
            self._dying.remove(w)
        self._wait_dirty = True

    def _check_kills(self, now: float) -> None:
        for w in list(self._dying):
            if w.exit_status() is not None:
                self._reap(w)
            elif now >= w.kill_at:
                w.kill(hard=True)
                w.kill_at = now + 5.0

    def _check_timeouts(self, now: float) -> None:
        limit = self.config.timeout_s
        assert limit is not None
        for w in list(self._workers):
            if w.inflight and w.cause is None and now - w.t_head > limit:
                if w.running_id() == -1:
                    # Between partitions: what we count as running has finished and its result is
                    # on its way. Restart the clock rather than kill a worker that is not late.
                    w.t_head = now
                    continue
                self._kill(w, "timeout", now)

    def _check_memory(self, now: float) -> None:
        self._next_memcheck = now + MEMORY_CHECK_S
        limit = self.config.memory_limit_mb
        assert limit is not None
        for w in list(self._workers):
            if not w.pid or w.cause is not None:
                continue
            rss = w.rss()
            if rss is not None and rss > limit * 1024 * 1024:
                self._kill(w, "memory", now, hard=True)

    def _sample(self, now: float) -> None:
        self._next_sample = now + self.config.sample_interval_s
        samples = [s for s in (w.sample() for w in self._workers if w.pid) if s is not None]
        self._emit(ev.ResourceSample(now, tuple(samples)))

    # -- messages -------------------------------------------------------------------------------
    def _read(self, w: WorkerHandle, draining: bool = False) -> None:
        try:
            for msg in w.receive():
                if w.cause is not None:
                    break
                self._on_message(w, msg)
        except (EOFError, OSError):
            if not draining and w.cause is None:
                # The socket closed: the process is exiting; its sentinel tells us how.
                w.join(1.0)
                self._on_exit(w)

    def _on_message(self, w: WorkerHandle, msg: Any) -> None:
        tag = msg[0]
        if w.cause is not None and tag != DIED:
            return  # a worker we abandoned (a hung thread waking up): its word no longer counts
        now = time.perf_counter()
        if tag == OK:
            seen = now - w.t_head  # how long the supervisor saw it run (for the hedge delay)
            part = w.inflight.popleft()
            w.note = None
            if w.inflight:
                self._head_started(w, now)
            w.done_with(part)
            service_s = msg[3]
            decided = self._ledger.finished(part, msg[2], service_s, now)
            if decided:
                if self._adapts:
                    self._adapt_prefetch(service_s)
                if self._cb is not None:
                    self._emit(
                        ev.PartitionFinished(
                            now, part.id, w.wid, part.attempt + 1, part.n, service_s, now - part.job.t
                        )
                    )
            if self._hedger is not None:
                if decided and not self._hedger.hedged(part):
                    self._hedger.observe(seen, service_s)
                self._hedge_ended(w, part, decided, now)
        elif tag == ERR:
            part = w.inflight.popleft()
            w.note = None
            if w.inflight:
                self._head_started(w, now)
            w.done_with(part)
            name, text = msg[2], msg[3]
            self._failed(
                w,
                part,
                "exception",
                f"{name}: {text}" if text else name,
                now,
                service_s=msg[5],
                exc_type=name,
                traceback=msg[4],
                injected=name == "InjectedFault",
            )
        elif tag == NOTE:
            w.note = msg[2]
        elif tag == BOOT:
            w.booted = True
        elif tag == READY:
            w.ready = True
            w.booted = True
            if msg[1]:
                w.pid = msg[1]
            self._load_crashes = 0
            self._emit(ev.WorkerStarted(now, w.wid, w.pid, now - w.t_spawn, w.replacing, w.node))
            if not self._state.start_answered and all(x.ready for x in self._workers):
                self._state.answer_start()
        elif tag == LOAD_ERR:
            w.cause = "load"
            self._break(msg[1], ModelSpecError)
        elif tag == DIED:
            if w.cause is None:
                self._on_death(w, None, None, note=msg[1])
        if w.retiring and not w.inflight and w.cause is None:
            self._stop_worker(w, "retired")

    def _head_started(self, w: WorkerHandle, now: float) -> None:
        w.t_head = now
        if self._cb is not None:
            head = w.inflight[0]
            self._emit(ev.PartitionStarted(now, head.id, w.wid, head.attempt + 1, head.n))

    def _failed(
        self, w: WorkerHandle, part: Part, cause: str, message: str, now: float, **details: Any
    ) -> None:
        decision, backoff = self._ledger.failed(part, cause, message, now, **details)
        if self._hedger is not None and self._hedger.hedged(part):
            self._hedge_ended(w, part, False, now)
        if decision == IGNORED or self._cb is None:
            return
        self._emit(
            ev.PartitionFailed(
                now,
                part.id,
                w.wid,
                part.attempt,
                part.n,
                cause,
                message,
                decision,
                bool(details.get("injected")),
                backoff,
            )
        )
        if decision == FINAL:
            self._emit(ev.ItemsFailed(now, part.id, part.n, cause))

    def _break(self, message: str, error: type[TunerError]) -> None:
        """The engine cannot serve (the model does not load): fail everything with that one line;
        further submits raise ``error``."""
        self._state.mark_broken(error(message))
        self._state.answer_start()
        now = time.perf_counter()
        self._ledger.fail_all(Failure("load", message, 0), now)
        for w in list(self._workers):
            w.inflight.clear()
            if w.cause is None or w.cause == "load":
                w.cause = "load"
                if w.kill(hard=False):
                    w.kill_at = now + TERMINATE_GRACE_S
                    self._dying.append(w)
        self._workers.clear()
        self._wait_dirty = True

    # -- dispatch -------------------------------------------------------------------------------
    def _take_submissions(self) -> None:
        ledger = self._ledger
        jobs = self._mailbox.jobs
        state = self._state
        while jobs:
            job = jobs.popleft()
            broken = state.broken
            if broken is not None:
                job.future.set_exception(type(broken)(str(broken)))
                self._mailbox.forget(job.future)
                continue
            ledger.add(job)
            if self._cb is not None:
                self._emit(ev.PartitionSubmitted(job.t, job.id, job.n))

    def _dispatch(self) -> None:
        ws = [w for w in self._workers if w.ready and w.cause is None and not w.retiring]
        hedger = self._hedger
        hedging = hedger is not None
        if hedger is not None:
            # A worker running a part past the hedge delay may be on a straggler: nothing more
            # queues behind it (the queue here waits for the next worker free instead).
            late = time.perf_counter() - hedger.delay_s
            ws = [w for w in ws if not w.inflight or w.t_head > late]
        if not ws:
            return
        prefetch = self._prefetch
        ledger = self._ledger
        pending = ledger.pending
        while pending:
            best = ws[0]
            for w in ws:
                if len(w.inflight) < len(best.inflight):
                    best = w
            if len(best.inflight) >= prefetch:
                return
            if hedging and best.inflight and len(pending) < len(ws):
                # Late binding: with every worker busy and no backlog, what waits goes to the first
                # worker free rather than behind one worker's running partition, which may turn out
                # a straggler. With a backlog (a closed loop, map) every worker needs its next
                # partition at once anyway: prefetching saves the round trip as without hedging.
                return
            part = ledger.take()
            if part is None:
                return
            self._send(best, part)

    def _send(self, w: WorkerHandle, part: Part) -> None:
        first_in_line = not w.inflight
        w.inflight.append(part)
        part.runs += 1  # Ledger.sent, inlined: this is the hottest path
        if first_in_line:
            now = time.perf_counter()
            w.t_head = now
            if self._cb is not None:
                self._emit(ev.PartitionStarted(now, part.id, w.wid, part.attempt + 1, part.n))
        if w.send(part):
            self._unflushed.append(w)

    # -- hedging (tuner.engine.hedging) -----------------------------------------------------------
    def _idle(self) -> list[WorkerHandle]:
        return [w for w in self._workers if not w.inflight and w.ready and w.cause is None and not w.retiring]

    def _running(self) -> list[tuple[WorkerHandle, Part, float]]:
        return [(w, w.inflight[0], w.t_head) for w in self._workers if w.inflight and w.cause is None]

    def _hedge(self, now: float) -> None:
        """Send a second copy of the longest-running straggler(s) to idle workers, within the budget."""
        hedger = self._hedger
        assert hedger is not None
        idle = self._idle()
        if not idle:
            return
        running = self._running()
        while idle:
            choice = hedger.pick(running, now)
            if choice is None:
                return
            original, part = choice
            target = idle.pop()
            hedger.sent_copy(part, original, target)
            part.copy = 1  # read by the handle as it sends: the worker draws faults as a hedge copy
            try:
                self._send(target, part)
            finally:
                part.copy = 0
            if self._cb is not None:
                self._emit(
                    ev.PartitionHedged(
                        now,
                        part.id,
                        target.wid,
                        original.wid,
                        part.attempt + 1,
                        part.n,
                        now - original.t_head,
                        hedger.sent,
                        hedger.completed,
                    )
                )

    def _hedge_ended(self, w: WorkerHandle, part: Part, decided: bool, now: float) -> None:
        """A copy of a hedged part ended on ``w``; when it won, the loser is cancelled."""
        hedger = self._hedger
        assert hedger is not None
        settled = hedger.ended(part, w, decided)
        if settled is None:
            return
        loser = settled.loser
        # "kill" ends only a losing first copy, the straggler: a losing hedge copy started a moment
        # ago and ends about as soon as a replacement worker could load the model.
        killed = (
            loser is not None
            and settled.hedge_won
            and self.config.hedge_cancel == "kill"
            and self._kill_loser(loser, part, now)
        )
        if self._cb is not None:
            self._emit(
                ev.HedgeSettled(
                    now, part.id, w.wid, loser.wid if loser is not None else -1, settled.hedge_won, killed
                )
            )

    def _kill_loser(self, w: WorkerHandle, part: Part, now: float) -> bool:
        """hedge_cancel="kill": end the loser's worker now and replace it; what it held goes back.
        A worker that cannot be killed (a thread) finishes instead."""
        if not w.can_kill or w.cause is not None or not w.inflight or w.inflight[0] is not part:
            return False
        w.cause = "hedged"
        self._workers.remove(w)
        self._wait_dirty = True
        if w.kill(hard=False):
            w.kill_at = now + TERMINATE_GRACE_S
            self._dying.append(w)
        w.inflight.popleft()
        self._ledger.failed(part, "hedged", "a hedge copy won", now)  # ignored: it has its outcome
        assert self._hedger is not None
        self._hedger.ended(part, w, False, killed=True)
        while w.inflight:  # what it held besides never started: back to the queue, no attempt
            queued = w.inflight.pop()
            self._ledger.put_back(queued)
            if self._hedger.hedged(queued):
                self._hedge_ended(w, queued, False, now)
        active = sum(1 for x in self._workers if x.cause is None and not x.retiring)
        if active < self._target:
            self._spawn(w.wid)
        return True

    def _adapt_prefetch(self, service_s: float) -> None:
        self._svc_ewma = service_s if self._svc_ewma == 0.0 else 0.9 * self._svc_ewma + 0.1 * service_s
        # Enough queued work to cover ~5 ms of round trips, between 2 and config.prefetch.
        depth = 1 + int(PREFETCH_COVER_S / max(self._svc_ewma, 1e-6))
        self._prefetch = max(min(2, self.config.prefetch), min(self.config.prefetch, depth))

    # -- shutdown -------------------------------------------------------------------------------
    def _shutdown(self, cancel: bool, error: EngineFailed | None) -> None:
        """Settle what is left, stop every worker (SIGTERM, then SIGKILL), free shared resources."""
        ledger = self._ledger
        self._state.mark_finished()
        for job in self._mailbox.take_jobs():
            ledger.add(job)
        if error is not None:
            ledger.abort_all(error)
        else:
            ledger.cancel_all()
        waits = []
        for w in self._workers:
            w.inflight.clear()
            w.cause = w.cause or "closed"
            try:
                needs_wait = w.stop()
                if cancel:
                    needs_wait = w.kill(hard=False) or needs_wait
            except (OSError, ValueError):
                needs_wait = True
            if needs_wait:
                waits.append(w)
            else:  # a thread: give it a moment to leave; a hung one is abandoned (a daemon thread)
                w.join(0.05 if cancel else 0.5)
                self._emit(ev.WorkerExited(time.perf_counter(), w.wid, w.pid, w.cause))
        waits.extend(self._dying)
        deadline = time.perf_counter() + (TERMINATE_GRACE_S if cancel else STOP_GRACE_S)
        for w in waits:
            w.join(max(0.0, deadline - time.perf_counter()))
        for w in waits:
            if w.exit_status() is None:
                w.kill(hard=False)
                w.join(TERMINATE_GRACE_S)
            if w.exit_status() is None:
                w.kill(hard=True)
                w.join(None)
            code, sig = w.exit_status() or (None, None)
            w.reap()
            self._emit(
                ev.WorkerExited(
                    time.perf_counter(), w.wid, w.pid, w.cause or "closed", code, sig, w.note is not None
                )
            )
        self._workers.clear()
        self._dying.clear()
        if self._launch.shared is not None:
            self._handle_cls.teardown(self._launch.shared)
            self._launch.shared = None
        self._mailbox.settle_outstanding(error)

    def _last_resort(self, error: EngineFailed | None) -> None:
        """_shutdown itself failed: still settle every future and end every worker we know of."""
        for w in self._workers + self._dying:
            try:
                w.kill(hard=True)
                w.join(TERMINATE_GRACE_S)
                w.reap()
            except BaseException:
                pass
        self._state.mark_finished()
        self._mailbox.settle_outstanding(
            error or EngineFailed("tuner's engine failed while shutting down (a bug in tuner; traceback logged)")
        )


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
