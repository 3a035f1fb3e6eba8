"""The worker side of the engine: which workers run, and keeping them so.

The :class:`WorkerManager` starts workers through the backend's handle class, replaces the ones
lost, retires some or starts more on resize, ends those given up on — SIGTERM, then SIGKILL after
:data:`TERMINATE_GRACE_S` — and reaps them once they have exited. It watches the clock of each
worker's head partition (timeouts) and each worker's RSS (the memory limit), and samples their CPU
and memory for the listener.

It never decides a partition's outcome. When a worker is lost, the supervisor
(:mod:`tuner.engine.supervisor`) settles what the worker held with the ledger, then asks here for
a replacement: the ledger is the task side (pebble's ``TaskManager``), this is the worker side
(pebble's ``WorkerManager``), and the supervisor combines the two. It is owned by the supervisor's
thread; callers only read it (:meth:`live`) and write :attr:`target` (a resize, applied here by
:meth:`resize` when the order arrives).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from tuner.engine import events as ev
from tuner.engine.config import EngineConfig
from tuner.engine.handles import Launch, WorkerHandle
from tuner.engine.ledger import Part

__all__ = ["MAX_LOAD_CRASHES", "STOP_GRACE_S", "TERMINATE_GRACE_S", "WorkerManager"]

#: after SIGTERM, a worker gets this long to exit before SIGKILL.
TERMINATE_GRACE_S = 0.5
#: on close, workers get this long to finish their partition and leave before being terminated.
STOP_GRACE_S = 2.0
#: how often the RSS watcher looks when a memory limit is set.
MEMORY_CHECK_S = 0.05
#: a worker that dies while starting or loading the model this many times in a row ends the engine.
MAX_LOAD_CRASHES = 3
#: a worker still there this long after SIGKILL gets SIGKILL again (it may have been stopped).
KILL_AGAIN_S = 5.0


class WorkerManager:
    """Spawns, replaces, resizes, ends and reaps one engine's workers; watches their clocks and memory.

    ``workers`` are those serving or starting (never rebound: the supervisor keeps a reference);
    ``dying`` those told to leave or killed that have not exited yet. A handle's ``cause`` is set
    the moment it leaves ``workers``.
    """

    def __init__(
        self,
        model: Any,
        label: str,
        config: EngineConfig,
        post: Callable[[WorkerHandle, Any], None],
        emitter: ev.Emitter,
    ) -> None:
        kind = config.kind
        self.config = config
        self.handle_cls: type[WorkerHandle] = kind.handle_class()
        self.launch = Launch(model, label, config, post)
        self.workers: list[WorkerHandle] = []
        self.dying: list[WorkerHandle] = []
        #: how many workers to run: a caller's resize() writes it at once, :meth:`resize` applies it
        self.target = config.workers if kind.pooled else 1
        #: workers replaced after a crash, timeout or memory kill (cumulative)
        self.replaced = 0
        self.replaced_by: dict[str, int] = {}  # ... by cause (crash, timeout, memory)
        #: the workers changed since the supervisor last built its wait map
        self.changed = True
        #: head partitions have a timeout (and the backend can take a partition from its worker)
        self.timeouts = config.timeout_s is not None and kind.can_time_out
        self.next_memcheck = 0.0
        self.next_sample = 0.0
        self._wids = itertools.count(1)
        self._load_crashes = 0
        self._listener = emitter.listener
        self._emit = emitter.emit

    # -- once per engine ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Prepare what every worker shares (the caller's thread; may raise BadInput)."""
        self.launch.shared = self.handle_cls.setup(self.launch)

    def start_all(self) -> None:
        """Start the first workers."""
        for _ in range(self.target):
            self.spawn(None)

    # -- who serves ---------------------------------------------------------------------------------
    def active(self) -> int:
        """Workers serving or starting that are not retiring."""
        return sum(1 for w in self.workers if w.cause is None and not w.retiring)

    def live(self) -> int:
        """Workers ready to serve and not retiring (any thread: a snapshot)."""
        return sum(1 for w in list(self.workers) if w.ready and not w.retiring)

    def all_ready(self) -> bool:
        """Every worker has loaded the model."""
        return all(w.ready for w in self.workers)

    def idle(self) -> list[WorkerHandle]:
        """Ready workers holding nothing."""
        return [w for w in self.workers if not w.inflight and w.ready and w.cause is None and not w.retiring]

    def running(self) -> list[tuple[WorkerHandle, Part, float]]:
        """(worker, the part it runs, when that part started) for each busy worker."""
        return [(w, w.inflight[0], w.t_head) for w in self.workers if w.inflight and w.cause is None]

    # -- growing and shrinking ------------------------------------------------------------------------
    def spawn(self, replacing: int | None) -> WorkerHandle:
        """Start one worker (``replacing``: the id of the worker it replaces, for events)."""
        w = self.handle_cls(next(self._wids), replacing, self.launch)
        self.workers.append(w)
        self.changed = True
        w.start()
        return w

    def replace(self, w: WorkerHandle, *, counted: bool = True) -> None:
        """``w`` is gone: start one in its place, unless the pool is at its target without it.
        ``counted``: it was lost (crash, timeout, memory), not ended as a hedge's loser."""
        if counted:
            self.replaced += 1
            cause = w.cause or "unknown"
            self.replaced_by[cause] = self.replaced_by.get(cause, 0) + 1
        if self.active() < self.target:
            self.spawn(w.wid)

    def resize(self, n: int) -> None:
        """Apply a resize order: start workers, or retire the least busy (they take no new work and
        stop once drained)."""
        active = [w for w in self.workers if w.cause is None and not w.retiring]
        if n > len(active):
            for _ in range(n - len(active)):
                self.spawn(None)
        elif n < len(active):
            for w in sorted(active, key=lambda w: len(w.inflight))[: len(active) - n]:
                w.retiring = True
                if not w.inflight:
                    self.retire(w, "retired")

    def retire(self, w: WorkerHandle, cause: str) -> None:
        """Ask an idle worker to leave (it is not replaced)."""
        w.cause = cause
        self.workers.remove(w)
        self.changed = True
        if w.stop():
            w.kill_at = time.perf_counter() + STOP_GRACE_S
            self.dying.append(w)
        else:
            self._emit(ev.WorkerExited(time.perf_counter(), w.wid, w.pid, cause))

    # -- what workers say -----------------------------------------------------------------------------
    def on_ready(self, w: WorkerHandle, pid: int, now: float) -> None:
        """``w`` loaded the model (READY; ``pid``: its process, 0 if it has none of its own)."""
        w.ready = True
        w.booted = True
        if pid:
            w.pid = pid
        self._load_crashes = 0
        self._emit(ev.WorkerStarted(now, w.wid, w.pid, now - w.t_spawn, w.replacing, w.node))

    # -- ending workers -------------------------------------------------------------------------------
    def kill(
        self, w: WorkerHandle, cause: str, now: float, *, hard: bool = False, injected: bool = False
    ) -> None:
        """End a worker given up on (timeout, memory, a hedge's loser): out of the pool at once,
        SIGTERM (SIGKILL when ``hard``), reaped once it has exited. One that cannot be killed (a hung
        thread) is abandoned: its late words are ignored."""
        w.cause = cause
        self.workers.remove(w)
        self.changed = True
        if w.kill(hard):
            w.kill_at = now + TERMINATE_GRACE_S
            self.dying.append(w)
        else:
            self._emit(ev.WorkerExited(now, w.wid, w.pid, cause, injected=injected))

    def died(self, w: WorkerHandle, code: int | None, sig: str | None, now: float, *, injected: bool) -> None:
        """``w`` died on its own: out of the pool, its exit announced, what it held freed."""
        w.cause = "crash"
        if w in self.workers:
            self.workers.remove(w)
        self.changed = True
        self._emit(ev.WorkerExited(now, w.wid, w.pid, "crash", code, sig, injected))
        w.reap()

    def exit_status(self, w: WorkerHandle) -> tuple[int | None, str | None]:
        """How ``w``, whose sentinel fired, ended. One that closed its socket but lives on is no
        worker of ours any more: it is killed first."""
        w.join(1.0)
        status = w.exit_status()
        if status is None:
            w.kill(hard=True)
            w.join(5.0)
            status = w.exit_status()
        return status or (None, None)

    def load_crashed(self) -> bool:
        """A worker was lost before it had loaded the model. True when that happened
        :data:`MAX_LOAD_CRASHES` times in a row: its replacement would do the same, forever."""
        self._load_crashes += 1
        return self._load_crashes >= MAX_LOAD_CRASHES

    def reap(self, w: WorkerHandle) -> None:
        """A dying worker has exited (if it has not, it is left for a later look): free what it
        held, announce it."""
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
        if w in self.dying:
            self.dying.remove(w)
        self.changed = True

    def check_kills(self, now: float) -> None:
        """Reap the dying that have exited; SIGKILL those past their grace."""
        for w in list(self.dying):
            if w.exit_status() is not None:
                self.reap(w)
            elif now >= w.kill_at:
                w.kill(hard=True)
                w.kill_at = now + KILL_AGAIN_S

    def abandon_all(self, now: float) -> None:
        """The engine cannot serve (the model does not load): end every worker; none is replaced."""
        for w in list(self.workers):
            w.inflight.clear()
            if w.cause is None or w.cause == "load":
                w.cause = "load"
                if w.kill(hard=False):
                    w.kill_at = now + TERMINATE_GRACE_S
                    self.dying.append(w)
        self.workers.clear()
        self.changed = True

    def stop_all(self, cancel: bool) -> None:
        """Close: every worker leaves — after its partition, or at once (SIGTERM) when ``cancel`` —
        within its grace, then SIGTERM, then SIGKILL; each is reaped and announced, then what the
        workers shared is freed."""
        waits = []
        for w in self.workers:
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
        waits.extend(self.dying)
        deadline = time.perf_counter() + (TERMINATE_GRACE_S if cancel else STOP_GRACE_S)
        for w in waits:
            w.join(max(0.0, deadline - time.perf_counter()))
        for w in waits:
            self._end_for_good(w)
        self.workers.clear()
        self.dying.clear()

    def release_shared(self) -> None:
        """Undo the backend's setup in this process (a thread or inline engine's thread limits).
        Called from the thread that closes the engine, never the supervisor's: OpenMP limits are
        per thread, and threadpoolctl restores an OpenBLAS limit only from the thread that set it
        (seen: a thread runtime left the caller's BLAS at 1 thread after close)."""
        if self.launch.shared is not None:
            self.handle_cls.teardown(self.launch.shared)
            self.launch.shared = None

    def _end_for_good(self, w: WorkerHandle) -> None:
        """SIGTERM, then SIGKILL, whatever it takes; then reap and announce."""
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

    def kill_all(self) -> None:
        """The last resort (closing itself failed): SIGKILL every worker known, ignoring errors."""
        for w in self.workers + self.dying:
            try:
                w.kill(hard=True)
                w.join(TERMINATE_GRACE_S)
                w.reap()
            except BaseException:
                pass

    # -- watching ---------------------------------------------------------------------------------------
    def late(self, now: float) -> list[WorkerHandle]:
        """Workers whose head partition has run past the timeout."""
        limit = self.config.timeout_s
        assert limit is not None
        out = []
        for w in self.workers:
            if w.inflight and w.cause is None and now - w.t_head > limit:
                if w.running_id() == -1:
                    # Between partitions: what we count as running has finished and its result is
                    # on its way. Restart the clock rather than kill a worker that is not late.
                    w.t_head = now
                    continue
                out.append(w)
        return out

    def over_memory(self, now: float) -> list[WorkerHandle]:
        """Workers whose RSS is over the memory limit (looked at every :data:`MEMORY_CHECK_S`)."""
        self.next_memcheck = now + MEMORY_CHECK_S
        limit = self.config.memory_limit_mb
        assert limit is not None
        out = []
        for w in self.workers:
            if not w.pid or w.cause is not None:
                continue
            rss = w.rss()
            if rss is not None and rss > limit * 1024 * 1024:
                out.append(w)
        return out

    def sample(self, now: float) -> None:
        """Emit a ResourceSample of every worker that is a process of its own."""
        self.next_sample = now + self.config.sample_interval_s
        samples = [s for s in (w.sample() for w in self.workers if w.pid) if s is not None]
        self._emit(ev.ResourceSample(now, tuple(samples)))

    def deadlines(self, out: list[float]) -> None:
        """Add to ``out`` when the manager next needs the supervisor awake: a head partition's
        timeout, a dying worker's kill, the memory watch, the next sample."""
        t = self.config.timeout_s
        if self.timeouts and t is not None:
            for w in self.workers:
                if w.inflight and w.cause is None:
                    out.append(w.t_head + t)
        for w in self.dying:
            out.append(w.kill_at)
        if self.config.memory_limit_mb is not None:
            out.append(self.next_memcheck)
        if self._listener is not None:
            out.append(self.next_sample)
