"""Backpressure: at most ``max_pending`` items in flight; past it block, time out or refuse.

Every item the runtime accepts takes room here first — one per submitted item, a partition's
length for ``map`` — and gives it back when its outcome is known, however it ends. Past the bound
the overload policy decides: "block" waits for room, "timeout" waits ``overload_timeout_s`` then
raises :class:`~tuner.errors.Overloaded`, "reject" raises it at once. A thread of the runtime's
own (a callback it runs) is refused rather than made to wait, since only those threads free room.
"""

from __future__ import annotations

import threading
import time

from tuner.errors import EngineClosed, Overloaded
from tuner.runtime.callbacks import in_runtime_thread

__all__ = ["Gate"]


class Gate:
    """At most ``limit`` items in flight; past it, block, time out or refuse (the overload policy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        self.rejected = 0
        self.closed = False
        self._cv = threading.Condition()

    def try_acquire(self, n: int) -> int:
        """Take room for ``n`` items if there is some now; the room taken (0: none)."""
        n = min(n, self.limit)  # a partition larger than the bound still fits alone
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if self.pending + n > self.limit:
                return 0
            self.pending += n
            return n

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

    def release(self, n: int) -> None:
        """Give back room for ``n`` items (their outcomes are known)."""
        if n:
            with self._cv:
                self.pending -= n
                self._cv.notify_all()

    def close(self) -> None:
        """Refuse from now on; callers waiting for room get EngineClosed."""
        with self._cv:
            self.closed = True
            self._cv.notify_all()

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
