"""``map``'s look-ahead window: partitions sent ahead of the consumer, in input order, within bounds.

Partitions are sent ahead within a window of partitions (sized from the autoscaler's ceiling, so a
large input shows as backlog and can scale the pool up) and within the gate's room. When the
runtime is full, the map first consumes its own partitions (each frees room); with none in flight
it must wait for room under its overload policy. ``map`` waits by blocking, ``amap`` by awaiting:
both drive this one window, so they send the same partitions and give the same outcomes;
``map_batches`` and ``amap_batches`` read each partition's outputs whole (:func:`partition_outputs`)
instead of item by item.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from tuner.errors import ItemFailed

if TYPE_CHECKING:
    from tuner.engine import PartitionResult
    from tuner.runtime.dispatch import Dispatcher
    from tuner.runtime.gate import Gate

__all__ = ["PartitionWindow", "failed_outputs", "partition_outputs"]


class PartitionWindow:
    """Partitions of ``items`` in flight for one ``map``: ``inflight`` holds (first item's index, future)."""

    def __init__(
        self, items: Iterable[Any], size: int, window: int, gate: Gate, dispatch: Dispatcher
    ) -> None:
        from tuner.engine.pool import partitions

        self.inflight: deque[tuple[int, Future[PartitionResult]]] = deque()
        self._chunks = partitions(items, size)
        self._window = window
        self._gate = gate
        self._dispatch = dispatch
        self._index = 0
        self._held: Any = None  # a chunk taken from the input, waiting for room

    def fill(self) -> Any:
        """Send what fits now. Returns the chunk that can only go once room is waited for — when none
        of this map's partitions is in flight to consume first — else None."""
        while len(self.inflight) < self._window:
            chunk = self._held if self._held is not None else next(self._chunks, None)
            self._held = None
            if chunk is None:
                return None
            room = self._gate.try_acquire(len(chunk))
            if not room:
                self._held = chunk  # full: consume our own head first, it frees room
                return None if self.inflight else chunk
            self.send(chunk, room)
        return None

    def send(self, chunk: Any, room: int) -> None:
        """Send ``chunk`` with the ``room`` taken for it."""
        self._held = None
        self.inflight.append((self._index, self._dispatch.send(chunk, time.perf_counter(), room)))
        self._index += len(chunk)

    def cancel(self) -> None:
        """The consumer left (break, exception, close) or the engine failed: what has not run never
        will, and leaves the backlog now. A partition already running finishes in its worker and its
        result is dropped."""
        for _, f in self.inflight:
            f.cancel()


def failed_outputs(first: int, result: PartitionResult, on_failure: str) -> Iterator[Any]:
    """The outcomes of a partition with a failed item: ``on_failure="raise"`` raises ItemFailed at the
    first failure (its index ``first`` + its place), ``"yield"`` yields the failure record in its place."""
    from tuner.engine import Failure

    for i, out in enumerate(result.outputs):
        if isinstance(out, Failure) and on_failure == "raise":
            raise ItemFailed(first + i, out)
        yield out


def partition_outputs(first: int, result: PartitionResult, on_failure: str) -> Any:
    """A partition's outputs whole, for ``map_batches``: what the model returned for it — an array
    (or list) with one row per item, or for a model with several outputs a tuple with one array per
    output. Per-item rows — the pieces of a partition the engine split to isolate a failing item,
    or a model that returns a list — are stacked into arrays when they are arrays or numpy scalars
    (a tuple of arrays for per-item tuples), so that every batch of a model has one form. With a failed item, ``"raise"`` raises
    ItemFailed at it, ``"yield"`` gives a list, one outcome per item, the Failure record in its
    place (the rows stay aligned with the inputs)."""
    from tuner.models.columns import Rows

    if result.failed:
        return list(failed_outputs(first, result, on_failure))
    out = result.outputs
    if isinstance(out, Rows):
        return out.outputs
    if isinstance(out, list) and out:
        return _restacked(out)
    return out


def _restacked(rows: list[Any]) -> Any:
    """Per-item outputs stacked as a model gives them whole: a tuple of arrays for per-item tuples,
    an array for array rows; anything else stays a list."""
    import numpy as np

    def is_array(x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    head = rows[0]
    try:
        if isinstance(head, tuple) and all(is_array(x) for x in head):
            return tuple(np.stack(column) for column in zip(*rows, strict=True))
        if is_array(head):
            return np.stack(rows)
    except ValueError:  # rows of different shapes: no array holds them
        pass
    return rows
