"""The runtime in an event loop: ``asubmit`` and ``amap`` resolved on the caller's loop, never blocking it.

::

    coroutine ─► the gate: room now, else Gate.acquire_async (queued; woken on its loop when a
                 runtime thread frees room)
              ─► the same batcher (Runtime.asubmit) or look-ahead window (map_window) as submit / map
              ─► await until_done(future) (until_all_done(futures): a request's items, one
                 wake-up for them all): the runtime's thread that resolves a future puts it in
                 the loop's inbox; one loop.call_soon_threadsafe wakes the loop for a whole burst
                 of outcomes (a partition's items), not one per item

No thread per request: a coroutine waits on an ``asyncio`` future, never in a thread. The one
thread this module starts runs the workers' start (a blocking load of the model) when a coroutine
finds the runtime not started, once for every coroutine that waits for it.

An item's outcome is read from its ``concurrent.futures.Future`` once it is done, so an outcome is
delivered exactly as ``submit(...).result()`` gives it; a cancelled awaiting task cancels that future
(the batcher drops an item it has not sent yet, and its room comes back at once).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any

from tuner.runtime.mapping import failed_outputs, partition_outputs

if TYPE_CHECKING:
    from tuner.errors import TunerError
    from tuner.runtime.gate import Gate
    from tuner.runtime.mapping import PartitionWindow

__all__ = ["in_thread", "map_window", "until_all_done", "until_done"]


#: most waiters one pass of the loop wakes (each then runs a task step: ~10-20 µs)
DRAIN_CHUNK = 64


class _Inbox:
    """Futures done in the runtime's threads, handed to one event loop: one wake-up per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._done: list[asyncio.Future[None]] = []
        self._scheduled = False

    def put(self, waiter: asyncio.Future[None], _done: Future[Any]) -> None:
        """A done-callback (any thread): wake ``waiter`` on its loop, with whatever else is done."""
        with self._lock:
            self._done.append(waiter)
            if self._scheduled:
                return  # a wake-up is on its way: it takes this one too
            self._scheduled = True
        loop = self._loop()
        try:
            if loop is None:
                raise RuntimeError("the event loop is gone")
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody awaits these any more
            with self._lock:
                self._done.clear()
                self._scheduled = False

    def _drain(self) -> None:
        # On the loop: the waiters handed over since the last wake-up, DRAIN_CHUNK at a time. Each
        # wakes a task that runs in the loop's next pass; a whole burst at once (hundreds, after the
        # loop's thread was descheduled a while) would hold every timer and I/O callback behind it.
        with self._lock:
            done = self._done[:DRAIN_CHUNK]
            del self._done[:DRAIN_CHUNK]
            more = bool(self._done)
            self._scheduled = more
        for waiter in done:
            if not waiter.done():  # a waiter whose task was cancelled is done already
                waiter.set_result(None)
        if more:
            loop = self._loop()
            if loop is not None:
                loop.call_soon(self._drain)  # the rest after what else is due now (timers, I/O)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def _inbox() -> tuple[asyncio.AbstractEventLoop, _Inbox]:
    loop = asyncio.get_running_loop()
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.setdefault(loop, _Inbox(loop))
    return loop, inbox


def until_done(future: Future[Any]) -> asyncio.Future[None]:
    """An awaitable that completes on the running loop once ``future`` is done (its outcome is then
    ``future.result()``). Cancelling the awaitable leaves ``future`` as it is."""
    loop, inbox = _inbox()
    waiter: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(functools.partial(inbox.put, waiter))
    return waiter


def until_all_done(futures: Sequence[Future[Any]]) -> asyncio.Future[None]:
    """An awaitable that completes on the running loop once every one of ``futures`` is done: one
    wake-up of the loop for them all (a request's items), not one per future. Cancelling the
    awaitable leaves the futures as they are."""
    loop, inbox = _inbox()
    waiter: asyncio.Future[None] = loop.create_future()
    if not futures:
        waiter.set_result(None)
        return waiter
    left = [len(futures)]
    lock = threading.Lock()

    def one_done(done: Future[Any]) -> None:  # any thread: the last one hands the waiter over
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            inbox.put(waiter, done)

    for f in futures:
        f.add_done_callback(one_done)
    return waiter


def in_thread(fn: Callable[[], Any], name: str) -> Future[Any]:
    """Run ``fn`` in a thread of its own; its outcome in a future (which no caller can cancel)."""
    result: Future[Any] = Future()
    result.set_running_or_notify_cancel()

    def run() -> None:
        try:
            result.set_result(fn())
        except BaseException as e:
            result.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return result


async def map_window(
    prepare: Callable[[], Awaitable[PartitionWindow]],
    gate: Gate,
    overload: str,
    timeout_s: float,
    on_failure: str,
    engine_error: Callable[[], TunerError],
    batches: bool = False,
) -> AsyncIterator[Any]:
    """``map``'s loop, awaited: the same window (``prepare`` starts the runtime and makes it, at the
    first ``__anext__``), outputs in input order, each item once (``batches``: each partition's
    outputs whole, as ``map_batches`` gives them)."""
    window = await prepare()
    try:
        while True:
            waiting = window.fill()
            if waiting is not None:
                window.send(waiting, await gate.acquire_async(len(waiting), overload, timeout_s))
                continue
            if not window.inflight:
                return
            first, fut = window.inflight[0]  # left in the window while awaited: a cancel reaches it
            if not fut.done():
                await until_done(fut)
            window.inflight.popleft()
            try:
                result = fut.result()  # an engine error (its supervisor broke) is raised as is
            except CancelledError:  # we cancel only what we abandon: the engine dropped it
                raise engine_error() from None
            if batches:
                yield partition_outputs(first, result, on_failure)
                continue
            outputs = result.outputs if not result.failed else failed_outputs(first, result, on_failure)
            for y in outputs:
                yield y
    finally:
        window.cancel()
