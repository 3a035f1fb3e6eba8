"""``submit``'s dynamic batcher and completer: items one at a time in, partitions to the engine, outcomes
back to each item's future.

::

    put(item, future) ─► queue ─► batcher thread: a partition closes at max_batch_size items or when
                                  its first item has waited max_batch_delay_ms ─► Dispatcher.send
    item futures ◄── completer thread ◄── the partition's done-callback (engine supervisor thread)

Resolving an item future runs the caller's callbacks, which may be slow, so it happens in the
completer thread rather than in the engine's supervisor. Nothing is left pending: an item resolves
with its output, its failure record (:class:`~tuner.errors.ItemFailed`), or the engine's error when
the engine failed or was closed under the runtime; a future cancelled while queued is never run.
"""

from __future__ import annotations

import functools
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from tuner.errors import EngineClosed, EngineFailed, ItemFailed, TunerError
from tuner.runtime.callbacks import log, mark_runtime_thread

if TYPE_CHECKING:
    from tuner.engine import PartitionResult
    from tuner.runtime.dispatch import Dispatcher

__all__ = ["Batcher"]


class _Pending:
    """One submitted item waiting in the batcher."""

    __slots__ = ("future", "index", "item", "t")

    def __init__(self, index: int, item: Any, future: Future[Any], t: float) -> None:
        self.index = index
        self.item = item
        self.future = future
        self.t = t


_Done = tuple[list[_Pending], "Future[PartitionResult]"]


class Batcher:
    """Groups submitted items into partitions of at most ``size`` within ``delay_s``; its two threads
    start with the first item."""

    def __init__(self, size: int, delay_s: float, dispatch: Dispatcher) -> None:
        self.size = size
        self.delay_s = delay_s
        self._dispatch = dispatch
        self._cv = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._ids = itertools.count()
        self._closed = False
        self._batcher: threading.Thread | None = None
        self._completer: threading.Thread | None = None
        self._done_q: deque[_Done | None] = deque()
        self._done_evt = threading.Condition()

    def put(self, item: Any, future: Future[Any]) -> None:
        """Queue ``item``; ``future`` gets its outcome. EngineClosed once the batcher has stopped."""
        self.put_many([item], [future])

    def put_many(self, items: Sequence[Any], futures: Sequence[Future[Any]]) -> None:
        """Queue ``items`` together (side by side in the queue, so a request's items share partitions
        when they fit); each of ``futures`` gets its item's outcome. EngineClosed once stopped: then
        none is queued."""
        now = time.perf_counter()
        with self._cv:
            if self._closed:
                raise EngineClosed("the runtime is closed")
            if self._batcher is None:
                self._batcher = threading.Thread(target=self._batch_loop, name="tuner-batcher", daemon=True)
                self._completer = threading.Thread(
                    target=self._complete_loop, name="tuner-completer", daemon=True
                )
                self._batcher.start()
                self._completer.start()
            was_empty = not self._queue
            for item, future in zip(items, futures, strict=True):
                self._queue.append(_Pending(next(self._ids), item, future, now))
            if was_empty or len(self._queue) >= self.size:
                self._cv.notify()

    def queued(self) -> int:
        """Items waiting for their partition to close."""
        with self._cv:
            return len(self._queue)

    def stop(self, cancel: bool) -> None:
        """Take no more items and send what is queued — or, with ``cancel``, fail it — then wait for
        the batcher thread."""
        from tuner.engine import Failure

        with self._cv:
            self._closed = True
            dropped = list(self._queue) if cancel else []
            if cancel:
                self._queue.clear()
            self._cv.notify_all()
            batcher = self._batcher
        for p in dropped:
            if p.future.set_running_or_notify_cancel():
                p.future.set_exception(
                    ItemFailed(p.index, Failure("cancelled", "the runtime closed first", 0))
                )
        if batcher is not None:
            batcher.join()

    def finish(self) -> None:
        """Wait for the completer to deliver every outcome; call once the engine has resolved or
        cancelled every partition (their callbacks ran before its close returned), so the end
        marker comes after every hand-over."""
        with self._done_evt:
            self._done_q.append(None)
            self._done_evt.notify()
        if self._completer is not None:
            self._completer.join()

    # -- the batcher thread ----------------------------------------------------------------------------

    def _batch_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return  # closed and drained
            # A future the caller cancelled while it waited is dropped here, never run.
            batch = [p for p in batch if p.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                fut = self._dispatch.send(_as_partition([p.item for p in batch]), batch[0].t, 0)
            except TunerError as e:  # engine closed or broken (the model cannot load)
                _fail(batch, e)
                continue
            except Exception as e:  # a bug below us must not strand the queue: fail this batch
                log.exception("runtime: the engine refused a partition")
                _fail(batch, _engine_failed("the engine refused a partition", e))
                continue
            fut.add_done_callback(functools.partial(self._hand_over, batch))

    def _next_batch(self) -> list[_Pending] | None:
        """The next partition's items, once it is full or its first item has waited long enough."""
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            deadline = self._queue[0].t + self.delay_s
            while len(self._queue) < self.size and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            return [self._queue.popleft() for _ in range(min(self.size, len(self._queue)))]

    def _hand_over(self, batch: list[_Pending], fut: Future[PartitionResult]) -> None:
        # Runs in the engine's supervisor thread: resolving item futures runs the callers'
        # callbacks, which may be slow, so that happens in the completer thread instead.
        with self._done_evt:
            self._done_q.append((batch, fut))
            self._done_evt.notify()

    # -- the completer thread --------------------------------------------------------------------------

    def _complete_loop(self) -> None:
        mark_runtime_thread()  # resolving futures runs the callers' callbacks: they cannot wait for room
        while True:
            with self._done_evt:
                while not self._done_q:
                    self._done_evt.wait()
                entry = self._done_q.popleft()
            if entry is None:
                return
            batch, fut = entry
            try:
                self._complete(batch, fut)
            except Exception as e:  # guarded: one bad batch never stops the completer
                log.exception("runtime: could not hand partition outcomes to their futures")
                _fail(batch, _engine_failed("the runtime could not deliver this outcome", e))

    def _complete(self, batch: list[_Pending], fut: Future[PartitionResult]) -> None:
        from tuner.engine import Failure

        if fut.cancelled():
            if self._closed:
                failure = Failure("cancelled", "the runtime closed before this item ran", 0)
                for p in batch:
                    p.future.set_exception(ItemFailed(p.index, failure))
            else:
                _fail(batch, self._dispatch.engine_error())
            return
        exc = fut.exception()
        if exc is not None:
            _fail(batch, exc)
            return
        outputs = fut.result().outputs
        if len(outputs) != len(batch):
            raise EngineFailed(f"the engine returned {len(outputs)} outcomes for {len(batch)} items")
        for p, out in zip(batch, outputs, strict=True):
            if isinstance(out, Failure):
                p.future.set_exception(ItemFailed(p.index, out))
            else:
                p.future.set_result(out)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    """Resolve every still-open future of ``batch`` with ``error``."""
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error)


def _engine_failed(what: str, cause: BaseException) -> EngineFailed:
    err = EngineFailed(f"{what}: {type(cause).__name__}: {cause}")
    err.__cause__ = cause
    return err


def _as_partition(items: list[Any]) -> Any:
    """Rows of one numpy shape and dtype become one array (it travels by shared memory and feeds
    a batch model as it would from map); anything else stays a list. numpy is not imported for this:
    if it is not loaded, the items cannot be numpy arrays."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(items[0], np.ndarray):
        first = items[0]
        if all(
            isinstance(x, np.ndarray) and x.shape == first.shape and x.dtype == first.dtype for x in items
        ):
            return np.stack(items)
    return items
