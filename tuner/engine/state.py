"""What crosses threads in an engine: its lifecycle flags and the mailbox of its supervisor.

Everything else in the engine belongs to one thread — the supervisor's (the ledger, the hedger, the
worker manager and its handles) — and needs no lock. What callers' threads and the worker handles
share with it is here, in two small objects:

- :class:`EngineState`: the flags ``started``, ``closed``, ``finished``, ``broken`` behind one lock,
  changed only by named transitions (loky's ``_ExecutorFlags``), and the start handshake;
- :class:`Mailbox`: what reaches the supervisor — submissions, orders (resize, stop), messages of
  handles without file descriptors — with the socket that wakes it, and the futures not settled yet.

The lock is the state's, and the mailbox takes it to hand over submissions: a submission checks
``finished`` and joins the queue in one step, so it is either taken by the supervisor or refused —
never left behind in a queue nobody reads.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from tuner.errors import EngineClosed, TunerError

if TYPE_CHECKING:
    from tuner.engine.ledger import Job, PartitionResult

__all__ = ["EngineState", "Mailbox"]


class EngineState:
    """The engine's lifecycle, one lock, named transitions.

    ``started`` (start() was called), ``closed`` (close() was called, or start() failed before the
    supervisor ran), ``finished`` (the supervisor has ended: nobody takes submissions any more),
    ``broken`` (why the engine cannot serve any more, or None). The flags only ever go from unset to
    set. Reads need no lock (one attribute each); a transition that must not cross another — a
    submission and the supervisor's end — holds :attr:`lock`.
    """

    __slots__ = ("_answered", "broken", "closed", "finished", "lock", "start_error", "started")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = False
        self.closed = False
        self.finished = False
        self.broken: TunerError | None = None
        #: what start() raises: the engine broke before it was ready
        self.start_error: BaseException | None = None
        self._answered = threading.Event()

    # -- transitions ----------------------------------------------------------------------------------
    def mark_started(self) -> bool:
        """created -> started. False if it was started already (by this caller or another)."""
        with self.lock:
            if self.started:
                return False
            self.started = True
            return True

    def mark_closed(self) -> bool:
        """-> closed: no more submissions. False if it was closed already."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            return True

    def mark_finished(self) -> None:
        """-> finished: the supervisor is ending. A submission after this is refused (EngineClosed);
        one before it is in the mailbox for the supervisor to settle."""
        with self.lock:
            self.finished = True

    def mark_broken(self, error: TunerError) -> None:
        """-> broken: the engine cannot serve any more; submissions raise a copy of ``error``, and so
        does a start() that has not been answered yet."""
        with self.lock:
            self.broken = error
            if not self._answered.is_set() and self.start_error is None:
                self.start_error = error

    # -- the start handshake ------------------------------------------------------------------------
    def answer_start(self) -> None:
        """start() may return: every worker is ready, or the engine broke (see :attr:`start_error`)."""
        self._answered.set()

    @property
    def start_answered(self) -> bool:
        """True once :meth:`answer_start` was called."""
        return self._answered.is_set()

    def wait_start(self) -> None:
        """Block until :meth:`answer_start`."""
        self._answered.wait()

    # -- checks for callers ---------------------------------------------------------------------------
    def raise_if_broken(self) -> None:
        """Raise (a fresh copy of) why the engine is broken, if it is."""
        err = self.broken
        if err is not None:
            raise type(err)(str(err))  # a fresh exception each time: no traceback piles up


class Mailbox:
    """What reaches the supervisor from other threads, and the socket that wakes it.

    ``jobs`` (callers' submissions), ``orders`` (``("resize", n)``, ``("stop", cancel)``) and
    ``posts`` (``(handle, message)`` from handles without file descriptors) are deques the supervisor
    empties in its loop. ``waiting`` is True while the supervisor is about to wait or waits in its
    poller: only then does a sender write to the wake socket (a write costs a system call, and a
    supervisor not waiting sees the deques anyway). ``outstanding`` holds every future not settled
    yet (the backlog).
    """

    __slots__ = ("_state", "_wake_w", "jobs", "orders", "outstanding", "posts", "waiting", "wake_r")

    def __init__(self, state: EngineState) -> None:
        self._state = state
        self.jobs: deque[Job] = deque()
        self.orders: deque[tuple[str, Any]] = deque()
        self.posts: deque[tuple[Any, Any]] = deque()
        self.outstanding: set[Future[PartitionResult]] = set()
        self.waiting = False
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- senders (any thread) -------------------------------------------------------------------------
    def deliver(self, jobs: Sequence[Job]) -> None:
        """Hand submissions to the supervisor; EngineClosed (or why it broke) if it has ended."""
        state = self._state
        with state.lock:
            if state.finished:  # the supervisor ended between the caller's checks and now
                for job in jobs:
                    job.future.cancel()
                state.raise_if_broken()
                raise EngineClosed("the engine is closed")
            self.outstanding.update(j.future for j in jobs)
            self.jobs.extend(jobs)
        if self.waiting:
            self.poke()

    def order(self, what: str, arg: Any) -> None:
        """An order for the supervisor (resize, stop); it wakes."""
        self.orders.append((what, arg))
        self.poke()

    def post(self, handle: Any, msg: Any) -> None:
        """A worker's message from a handle without file descriptors (``Launch.post``)."""
        self.posts.append((handle, msg))
        if self.waiting:
            self.poke()

    def poke(self) -> None:
        """Wake the supervisor."""
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # buffer full means a wake-up is already pending; closed means we are done

    # -- the supervisor's side --------------------------------------------------------------------------
    def drain_wake(self) -> None:
        """Empty the wake socket (the supervisor woke on it)."""
        try:
            while self.wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def forget(self, fut: Future[PartitionResult]) -> None:
        """A future was settled (the ledger's ``settled`` callback)."""
        with self._state.lock:
            self.outstanding.discard(fut)

    def take_jobs(self) -> list[Job]:
        """Every submission still queued (after ``finished``: no more can arrive)."""
        with self._state.lock:
            late = list(self.jobs)
            self.jobs.clear()
        return late

    def settle_outstanding(self, error: BaseException | None) -> None:
        """Settle every future not settled yet: with ``error``, or cancelled when it is None."""
        with self._state.lock:
            leftover = list(self.outstanding)
            self.outstanding.clear()
        for f in leftover:
            if error is None:
                f.cancel()
                continue
            try:
                f.set_exception(error)
            except InvalidStateError:  # settled or cancelled meanwhile
                pass

    # -- callers' views ---------------------------------------------------------------------------------
    def backlog(self) -> int:
        """Futures not settled yet."""
        return len(self.outstanding)

    def snapshot(self) -> list[Future[PartitionResult]]:
        """The futures not settled yet, now."""
        with self._state.lock:
            return list(self.outstanding)

    def close(self) -> None:
        """Close the wake socket (the supervisor has ended)."""
        self.wake_r.close()
        self._wake_w.close()
