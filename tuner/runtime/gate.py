"""Backpressure: at most ``max_pending`` items in flight; past it block, time out or refuse.

Every item the runtime accepts takes room here first — one per submitted item, a partition's
length for ``map`` — and gives it back when its outcome is known, however it ends. Past the bound
the overload policy decides: "block" waits for room, "timeout" waits ``overload_timeout_s`` then
raises :class:`~tuner.errors.Overloaded`, "reject" raises it at once. A thread of the runtime's
own (a callback it runs) is refused rather than made to wait, since only those threads free room.

:meth:`Gate.acquire_now` never waits, whatever the policy: room for all of a request's items now,
or :class:`~tuner.errors.Overloaded` (``asubmit_all``: a server's 503).

A coroutine (``asubmit``, ``amap``) waits without blocking its event loop: :meth:`Gate.acquire_async`
queues it, first come first served, and the room freed by a runtime thread is handed to the head of
that queue at once and the coroutine woken on its own loop (``loop.call_soon_threadsafe``). Room
handed over is never lost: a waiter cancelled meanwhile gives it back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from tuner.errors import EngineClosed, Overloaded
from tuner.runtime.callbacks import in_runtime_thread

if TYPE_CHECKING:
    import asyncio

__all__ = ["Gate"]


class _Waiter:
    """A coroutine waiting for room: its loop, the future it awaits, and whether room was handed to it."""

    __slots__ = ("future", "granted", "loop", "n")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.n = n
        self.loop = loop
        self.future = future
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    # On the waiter's loop: the one place its future is resolved (by a grant, a close or its timer).
    if not future.done():
        future.set_result(None)


class Gate:
    """At most ``limit`` items in flight; past it, block, time out or refuse (the overload policy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        self.rejected = 0
        self.closed = False
        self._cv = threading.Condition()
        self._waiters: deque[_Waiter] = deque()  # coroutines waiting for room, first come first served

    def try_acquire(self, n: int, *, in_turn: bool = False) -> int:
        """Take room for ``n`` items if there is some now; the room taken (0: none). ``in_turn``: not
        ahead of coroutines waiting for room (a coroutine's own first try)."""
        n = min(n, self.limit)  # a partition larger than the bound still fits alone
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if self.pending + n > self.limit or (in_turn and self._waiters):
                return 0
            self.pending += n
            return n

    def acquire_now(self, n: int) -> None:
        """Take room for all ``n`` items at once, or raise :class:`Overloaded` at once: never waits,
        whatever the overload policy, and never takes room ahead of coroutines waiting for it.

        For a caller that must answer now (an HTTP request's items: all of them run, or the request
        is refused with a 503). Unlike :meth:`try_acquire`, ``n`` is not capped at the bound: a
        request of more items than ``max_pending`` can never fit, and is refused. A refusal counts
        in ``rejected``.
        """
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if n > self.limit:
                self.rejected += 1
                raise Overloaded(
                    f"overloaded: {n} items at once is more than max_pending {self.limit}; send fewer at a time"
                )
            if self.pending + n > self.limit or self._waiters:
                raise self._refused("reject")
            self.pending += n

    def acquire(self, n: int, policy: str, timeout_s: float) -> int:
        """Take room for ``n`` items under ``policy``; raises Overloaded (reject, timeout) or EngineClosed."""
        n = min(n, self.limit)
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if self.pending + n > self.limit:
                if policy == "reject" or in_runtime_thread():
                    raise self._refused(policy)
                deadline = None if policy == "block" else time.monotonic() + timeout_s
                while self.pending + n > self.limit and not self.closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise self._timed_out(timeout_s)
                    self._cv.wait(remaining)
                if self.closed:
                    raise EngineClosed("the runtime closed while this call waited for room")
            self.pending += n
            return n

    async def acquire_async(self, n: int, policy: str, timeout_s: float) -> int:
        """:meth:`acquire` for a coroutine: waits for room without blocking its event loop.

        Raises Overloaded (reject at once; timeout after ``timeout_s``) or EngineClosed, in the
        coroutine. Cancelling the awaiting task gives up its place in the queue (and any room handed
        to it meanwhile).
        """
        import asyncio

        n = min(n, self.limit)
        loop = asyncio.get_running_loop()
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            # First come first served: a coroutine queues behind those already waiting (a refusal
            # never queues, so "reject" takes the room there is).
            if self.pending + n <= self.limit and (policy == "reject" or not self._waiters):
                self.pending += n
                return n
            if policy == "reject":
                raise self._refused(policy)
            waiter = _Waiter(n, loop, loop.create_future())
            self._waiters.append(waiter)
        timer = None if policy == "block" else loop.call_later(timeout_s, _wake, waiter.future)
        try:
            await waiter.future
        except BaseException:  # cancelled: leave the queue, and give back room handed over meanwhile
            self._leave(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        with self._cv:
            if waiter.granted:
                return n
            self._remove(waiter)
            if self.closed:
                raise EngineClosed("the runtime closed while this call waited for room")
            raise self._timed_out(timeout_s)

    def release(self, n: int) -> None:
        """Give back room for ``n`` items (their outcomes are known)."""
        if n:
            with self._cv:
                self.pending -= n
                if self._waiters:
                    self._grant()
                self._cv.notify_all()

    def close(self) -> None:
        """Refuse from now on; callers waiting for room get EngineClosed."""
        with self._cv:
            self.closed = True
            waiters, self._waiters = list(self._waiters), deque()
            self._cv.notify_all()
        for w in waiters:
            _call_soon(w.loop, w.future)

    # -- coroutines' queue (called with the lock held) --------------------------------------------------

    def _grant(self) -> None:
        """Hand free room to the waiting coroutines at the head of the queue, and wake them."""
        while self._waiters and self.pending + self._waiters[0].n <= self.limit:
            w = self._waiters.popleft()
            if _call_soon(w.loop, w.future):
                w.granted = True
                self.pending += w.n
            # else its loop is closed: nobody awaits it, and the room stays free

    def _remove(self, waiter: _Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return  # already taken off the queue (granted, or the gate closed)
        self._grant()  # it may have held up smaller requests behind it that fit now

    def _leave(self, waiter: _Waiter) -> None:
        with self._cv:
            if waiter.granted:
                waiter.granted = False
                self.pending -= waiter.n
                self._grant()
                self._cv.notify_all()
            else:
                self._remove(waiter)

    # -- refusals (called with the lock held: they count) ---------------------------------------------

    def _refused(self, policy: str) -> Overloaded:
        self.rejected += 1
        why = (
            "; a callback run by the runtime cannot wait for room (only its own thread frees it)"
            if policy != "reject"
            else "; retry later, or raise max_pending"
        )
        return Overloaded(f"overloaded: {self.pending} items in flight (max_pending {self.limit}){why}")

    def _timed_out(self, timeout_s: float) -> Overloaded:
        self.rejected += 1
        return Overloaded(
            f"overloaded: {self.pending} items in flight (max_pending {self.limit}) "
            f"for {timeout_s:g} s; retry later, or raise max_pending"
        )


def _call_soon(loop: Any, future: asyncio.Future[None]) -> bool:
    """Wake ``future`` on its loop from any thread; False if that loop is closed."""
    try:
        loop.call_soon_threadsafe(_wake, future)
    except RuntimeError:
        return False
    return True
