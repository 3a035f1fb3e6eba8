"""Partitions into the engine: the one door ``map``, ``amap`` and the dynamic batcher send through.

Each partition sent is counted live until its future is done (the autoscaler's backlog: a partition
cancelled by an abandoned ``map`` leaves it at once, not when the engine's supervisor gets round to
dropping it), gives its room back to the gate however it ends, and a completed one is metered.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from tuner.errors import EngineClosed, EngineFailed, TunerError

if TYPE_CHECKING:
    from tuner.engine import Engine, PartitionResult
    from tuner.runtime.gate import Gate
    from tuner.runtime.stats import Meter

__all__ = ["Dispatcher"]


class Dispatcher:
    """Sends partitions to ``engine``, with the gate's room and the meter's record attached."""

    def __init__(self, engine: Engine, gate: Gate, meter: Meter) -> None:
        self.engine = engine
        self._gate = gate
        self._meter = meter
        self._live = 0  # partitions sent, not done and not cancelled
        self._lock = threading.Lock()

    @property
    def live(self) -> int:
        """Partitions in the engine, waiting or running, that nobody has abandoned."""
        with self._lock:
            return self._live

    def send(self, chunk: Any, t_first: float, room: int) -> Future[PartitionResult]:
        """Submit ``chunk`` (its first item arrived at ``t_first``, ``room`` taken for it)."""
        try:
            fut = self.engine.submit(chunk)
        except BaseException:
            self._gate.release(room)
            raise
        with self._lock:
            self._live += 1
        fut.add_done_callback(functools.partial(self._record, t_first, room))
        return fut

    def _record(self, t_first: float, room: int, fut: Future[PartitionResult]) -> None:
        # Runs in the engine's supervisor thread (or the canceller's): keep it to a few appends.
        with self._lock:
            self._live -= 1
        self._gate.release(room)
        if fut.cancelled() or fut.exception() is not None:
            return
        result = fut.result()
        now = time.perf_counter()
        causes = [o.cause for _, o in result.failures()] if result.failed else ()
        self._meter.record(now, now - t_first, len(result.outputs), causes, result.service_s)

    def engine_error(self) -> TunerError:
        """Why the engine dropped a partition the runtime did not cancel: closed, or broken.

        The engine's public door says it: a submit to a closed or broken engine raises the reason
        (an empty partition costs the engine nothing when it is healthy).
        """
        try:
            self.engine.submit([])
        except TunerError as e:
            if isinstance(e, EngineClosed):
                return EngineClosed("the engine was closed before this item ran")
            return e
        return EngineFailed("the engine cancelled this partition without saying why")
