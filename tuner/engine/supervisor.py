"""The supervisor: the engine's one thread, which runs a model on workers, item-exact through failures.

Data flow (the Engine is the callers' face; the supervisor's thread owns everything from the
ledger on; every arrow to the far right is one of its worker handles)::

  caller threads                     supervisor thread (Supervisor)                            workers
  ──────────────                     ──────────────────────────────                            ───────
  Engine.submit(items) ─► Future ─┐
  Engine.resize(n), close() ──────┴─► Mailbox ─► Ledger.pending (the task side: FIFO; retries
    EngineState: started, closed,     jobs,          │  and split halves jump the queue)
    finished, broken (one lock)       orders,        │ dispatch: the least-loaded ready worker,
                                      wake socket    │ up to `prefetch` partitions each
                                                     ▼
                               handle.inflight (head = running) ── handle.send(part) ──► the worker:
                                                                                          serve():
         ProcessHandle: socket (shm for big numpy) + sentinel ─► Poller ◄──── OK / ERR ── fault plan
         ThreadHandle, InlineHandle, RayHandle: launch.post ─► Mailbox.posts ◄─────────── └► model()
                                                     │
      OK ──► Ledger.finished: fill the job's outputs ──► all items have an outcome ──► Future result
      ERR ──► Ledger.failed: retry with full-jitter backoff ──► after `retries`: split in halves to
             isolate the failing items ──► a single item that still fails gets its Failure record
      WorkerManager (the worker side): a crash (sentinel or DIED), a timeout (head clock), memory
             (RSS watch) ──► the worker leaves the pool (SIGTERM, SIGKILL after a grace) ──► the
             supervisor settles what it held: only the partition it was running counts an attempt
             (a process worker names it in a shared slot: results held back for batching die with
             it), the others go back to the front (Ledger.put_back) ──► the manager replaces it at
             once; once it has exited: its process group killed, its shared memory released (reap)
      resize ──► the manager starts workers, or retires the least busy once they have drained
      a part running past the hedge delay ──► a second copy to an idle worker, within a token
             budget (Hedger); the first outcome wins, the loser runs out and is ignored
      every event ──► Emitter ──► on_event(Event)  (the engine never knows who listens; a listener
             that raises is logged once and isolated)
      a bug in the supervisor itself ──► every open future fails with EngineFailed (traceback logged)

Who calls whom: the Engine (:mod:`~tuner.engine.pool`) flips the flags of
:class:`~tuner.engine.state.EngineState`, hands submissions and orders to the
:class:`~tuner.engine.state.Mailbox`, starts and joins this thread, prepares the backend in the
caller's thread (``WorkerManager.setup``), sets the worker target on resize and reads counters;
nothing else. The supervisor calls the pure :class:`~tuner.engine.ledger.Ledger` and
:class:`~tuner.engine.hedging.Hedger` (the task side) and the
:class:`~tuner.engine.workers.WorkerManager` (the worker side), which never calls back: it answers
(who is late, who is over memory, how a worker ended) and the supervisor combines the two, as
pebble's ``PoolManager`` combines its ``TaskManager`` and ``WorkerManager``. Handles reach the
supervisor only through the mailbox or their file descriptors; events leave through the
:class:`~tuner.engine.events.Emitter`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from tuner.engine import events as ev
from tuner.engine.config import EngineConfig, Failure
from tuner.engine.handles import EXITED, READABLE, WorkerHandle
from tuner.engine.hedge_desk import HedgeDesk
from tuner.engine.hedging import Hedger
from tuner.engine.ledger import FINAL, IGNORED, Ledger, Part
from tuner.engine.state import EngineState, Mailbox
from tuner.engine.transport import Poller
from tuner.engine.worker import BOOT, DIED, ERR, LOAD_ERR, NOTE, OK, READY
from tuner.engine.workers import MAX_LOAD_CRASHES, WorkerManager
from tuner.errors import ConfigError, EngineFailed, ModelSpecError, TunerError

__all__ = ["PREFETCH_COVER_S", "Supervisor"]

log = logging.getLogger("tuner.engine")

#: queue enough partitions per worker to cover this much of their service time (adaptive prefetch).
PREFETCH_COVER_S = 0.005

_WAKE = 0  # the poller's answer for the wake socket


class Supervisor:
    """The engine's thread: dispatch, the workers' words, outcomes, failures, hedges, the end.

    Built by the Engine with the engine's state and mailbox; :meth:`start` runs it in a thread of its
    own, which ends after a stop order (or a bug of its own) having settled every future and
    stopped every worker.

    Its hot path reads its own attributes: keep it, and the worker manager, well under 30 of them.
    CPython shares the keys of an instance's dict only up to 30 and reads shared-key attributes
    fastest (40 made each read ~1.7x slower here); the undivided Engine had 40, and dispatching a
    tiny task cost it ~5-10% more of the caller process's CPU (``tests/benchmarks/engine_ab.py``).
    """

    def __init__(
        self,
        model: Any,
        label: str,
        config: EngineConfig,
        state: EngineState,
        mailbox: Mailbox,
        emitter: ev.Emitter,
    ) -> None:
        kind = config.kind
        self.config = config
        self._state = state
        self._mailbox = mailbox
        self._listener = emitter.listener
        self._emit = emitter.emit
        self.ledger = Ledger(
            retries=config.retries,
            retry_on=config.retry_on,
            isolate=config.isolate,
            backoff=config.backoff,
            rng=random.Random(config.faults.seed),
            settled=mailbox.forget,
        )
        self.workers = WorkerManager(model, label, config, mailbox.post, emitter)
        # Hedged stragglers (tuner.engine.hedging); an inline engine has one worker: nothing to hedge to.
        self.hedger: Hedger | None = None
        if config.hedge_after_s is not None and kind.pooled:
            self.hedger = Hedger(config.hedge_after_s, config.hedge_budget)
            self._desk = HedgeDesk(
                self.hedger, self.workers, self.ledger, config.hedge_cancel, emitter, self._send
            )
        # Partitions queued per worker adapt to the service time (see _adapt_prefetch): deep for tiny
        # partitions, whose cost is the round trip; shallow for long ones, so one slow worker never
        # holds many partitions hostage. A backend without a pool runs one partition at a time.
        self.prefetch = min(2, config.prefetch) if kind.pooled else 1
        self._adapts = kind.pooled
        self._svc_ewma = 0.0
        self._memory_watch = config.memory_limit_mb is not None
        self._poller = Poller()
        self._unflushed: list[WorkerHandle] = []
        self._thread: threading.Thread | None = None

    # -- the thread ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the supervisor in its own thread (it starts the workers)."""
        self._thread = threading.Thread(target=self._run, name="tuner-supervisor", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """The thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        """Wait for the thread to end (not from the thread itself: a listener may close the engine)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        cancel = True
        error: EngineFailed | None = None
        try:
            self.workers.start_all()
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
        """Serve until a stop order; returns whether to cancel what is left."""
        perf = time.perf_counter
        ledger = self.ledger
        wm = self.workers
        mailbox = self._mailbox
        jobs, orders, posts = mailbox.jobs, mailbox.orders, mailbox.posts
        while True:
            while orders:
                order, arg = orders.popleft()
                if order == "stop":
                    return bool(arg)
                if order == "resize":
                    wm.resize(arg)
            if jobs:
                self._take_submissions()
            if ledger.pending:
                self._dispatch()
            if self.hedger is not None and self.hedger.tokens >= 1.0:
                self._desk.send_copies(perf())
            # The wait map first: a worker that died since the last turn must be out of it before a
            # flush changes which sockets we wait to write to.
            if wm.changed:
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
            if wm.timeouts:
                self._check_timeouts(now)
            due = ledger.next_retry()
            if due is not None and due <= now:
                ledger.release_due(now)
            if wm.dying:
                wm.check_kills(now)
            if self._memory_watch and now >= wm.next_memcheck:
                self._check_memory(now)
            if self._listener is not None and now >= wm.next_sample:
                wm.sample(now)

    def _timeout(self, now: float) -> float | None:
        """How long the poller may wait: until the next deadline of the workers, a retry or a hedge."""
        deadlines: list[float] = []
        self.workers.deadlines(deadlines)
        due = self.ledger.next_retry()
        if due is not None:
            deadlines.append(due)
        hedger = self.hedger
        if hedger is not None and hedger.tokens >= 1.0 and self.workers.idle():
            due = hedger.next_due(self.workers.running())
            if due is not None:
                deadlines.append(due)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _rebuild_waitmap(self) -> None:
        entries: list[tuple[Any, tuple[int, WorkerHandle | None]]] = [(self._mailbox.wake_r, (_WAKE, None))]
        for w in self.workers.workers:
            entries.extend((obj, (what, w)) for obj, what in w.waitables())
        for w in self.workers.dying:
            entries.extend((obj, (what, w)) for obj, what in w.waitables() if what == EXITED)
        self._poller.assign(entries)
        self.workers.changed = False

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

    # -- dispatch ---------------------------------------------------------------------------------------
    def _take_submissions(self) -> None:
        ledger = self.ledger
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
            if self._listener is not None:
                self._emit(ev.PartitionSubmitted(job.t, job.id, job.n))

    def _dispatch(self) -> None:
        ws = [w for w in self.workers.workers if w.ready and w.cause is None and not w.retiring]
        hedger = self.hedger
        hedging = hedger is not None
        if hedger is not None:
            # A worker running a part past the hedge delay may be on a straggler: nothing more
            # queues behind it (the queue here waits for the next worker free instead).
            late = time.perf_counter() - hedger.delay_s
            ws = [w for w in ws if not w.inflight or w.t_head > late]
        if not ws:
            return
        prefetch = self.prefetch
        ledger = self.ledger
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
            if self._listener is not None:
                self._emit(ev.PartitionStarted(now, part.id, w.wid, part.attempt + 1, part.n))
        if w.send(part):
            self._unflushed.append(w)

    def _adapt_prefetch(self, service_s: float) -> None:
        self._svc_ewma = service_s if self._svc_ewma == 0.0 else 0.9 * self._svc_ewma + 0.1 * service_s
        # Enough queued work to cover ~5 ms of round trips, between 2 and config.prefetch.
        depth = 1 + int(PREFETCH_COVER_S / max(self._svc_ewma, 1e-6))
        self.prefetch = max(min(2, self.config.prefetch), min(self.config.prefetch, depth))

    # -- the workers' words -----------------------------------------------------------------------------
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
            decided = self.ledger.finished(part, msg[2], service_s, now)
            if decided:
                if self._adapts:
                    self._adapt_prefetch(service_s)
                if self._listener is not None:
                    self._emit(
                        ev.PartitionFinished(
                            now, part.id, w.wid, part.attempt + 1, part.n, service_s, now - part.job.t
                        )
                    )
            if self.hedger is not None:
                if decided and not self.hedger.hedged(part):
                    self.hedger.observe(seen, service_s)
                self._desk.ended(w, part, decided, now)
        elif tag == ERR:
            self._on_error(w, msg, now)
        elif tag == NOTE:
            w.note = msg[2]
        elif tag == BOOT:
            w.booted = True
        elif tag == READY:
            self.workers.on_ready(w, msg[1], now)
            if not self._state.start_answered and self.workers.all_ready():
                self._state.answer_start()
        elif tag == LOAD_ERR:
            w.cause = "load"
            self._break(msg[1], ModelSpecError)
        elif tag == DIED:
            if w.cause is None:
                self._on_death(w, None, None, note=msg[1])
        if w.retiring and not w.inflight and w.cause is None:
            self.workers.retire(w, "retired")

    def _on_error(self, w: WorkerHandle, msg: Any, now: float) -> None:
        """ERR: the model raised on the head partition."""
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

    def _head_started(self, w: WorkerHandle, now: float) -> None:
        w.t_head = now
        if self._listener is not None:
            head = w.inflight[0]
            self._emit(ev.PartitionStarted(now, head.id, w.wid, head.attempt + 1, head.n))

    def _failed(
        self, w: WorkerHandle, part: Part, cause: str, message: str, now: float, **details: Any
    ) -> None:
        decision, backoff = self.ledger.failed(part, cause, message, now, **details)
        if self.hedger is not None and self.hedger.hedged(part):
            self._desk.ended(w, part, False, now)
        if decision == IGNORED or self._listener is None:
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
        self.ledger.fail_all(Failure("load", message, 0), now)
        self.workers.abandon_all(now)

    # -- lost workers: the worker side ends them, the task side settles what they held ---------------
    def _on_exit(self, w: WorkerHandle) -> None:
        """A worker process's sentinel fired: it is gone."""
        if w.cause is not None:  # we stopped or killed it (reap it), or its death was handled already
            if w in self.workers.dying:
                self.workers.reap(w)
            return
        # Results it sent before dying are still in its socket: take them first.
        self._read(w, draining=True)
        if w.cause is not None:
            return
        code, sig = self.workers.exit_status(w)
        self._on_death(w, code, sig)

    def _on_death(self, w: WorkerHandle, code: int | None, sig: str | None, note: str | None = None) -> None:
        injected = w.note == "crash"
        how = f"killed by {sig}" if sig else (note or f"exit code {code}")
        now = time.perf_counter()
        self.workers.died(w, code, sig, now, injected=injected)
        if not w.ready and self.workers.load_crashed():
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
        self.workers.replace(w)

    def _check_timeouts(self, now: float) -> None:
        for w in self.workers.late(now):
            if w.cause is None:
                self._give_up(w, "timeout", now)

    def _check_memory(self, now: float) -> None:
        for w in self.workers.over_memory(now):
            if w.cause is None:
                self._give_up(w, "memory", now, hard=True)

    def _give_up(self, w: WorkerHandle, cause: str, now: float, hard: bool = False) -> None:
        """End a worker past its timeout or memory limit; its head partition fails one attempt."""
        injected = w.note in ("hang", "slow", "memory")
        self.workers.kill(w, cause, now, hard=hard, injected=injected)
        if cause == "timeout":
            message = f"partition timed out after {self.config.timeout_s:g} s"
        else:
            message = f"worker exceeded its memory limit of {self.config.memory_limit_mb:g} MB"
            if not w.ready and self.workers.load_crashed():
                # while loading the model: its replacement would do the same, forever
                self._break(
                    f"{message} while loading the model, {MAX_LOAD_CRASHES} times in a row", ConfigError
                )
                return
        self._orphan_inflight(w, cause, message, now, injected=injected)
        self.workers.replace(w)

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
        ledger = self.ledger
        while w.inflight:
            part = w.inflight.pop()
            if part is not culprit:
                ledger.put_back(part)
                if self.hedger is not None and self.hedger.hedged(part):
                    self._desk.ended(w, part, False, now)
        if culprit is not None:  # None: it died between partitions, which none of them caused
            culprit.exact = True
            self._failed(w, culprit, cause, message, now, **details)

    # -- the end ----------------------------------------------------------------------------------------
    def _shutdown(self, cancel: bool, error: EngineFailed | None) -> None:
        """Settle what is left, stop every worker (SIGTERM, then SIGKILL), free shared resources."""
        ledger = self.ledger
        self._state.mark_finished()
        for job in self._mailbox.take_jobs():
            ledger.add(job)
        if error is not None:
            ledger.abort_all(error)
        else:
            ledger.cancel_all()
        self.workers.stop_all(cancel)
        self._mailbox.settle_outstanding(error)

    def _last_resort(self, error: EngineFailed | None) -> None:
        """_shutdown itself failed: still settle every future and end every worker we know of."""
        self.workers.kill_all()
        self._state.mark_finished()
        self._mailbox.settle_outstanding(
            error
            or EngineFailed("tuner's engine failed while shutting down (a bug in tuner; traceback logged)")
        )
