"""Typed events the engine emits to an optional callback. The engine never knows who listens.

Events are small frozen dataclasses with a monotonic timestamp ``t`` (``time.perf_counter()``).
They are emitted from the supervisor thread, synchronously: a callback must be quick (append to a
queue, post a message) and must not call back into the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("tuner.engine")


@dataclass(frozen=True, slots=True)
class PartitionSubmitted:
    t: float
    partition: int
    items: int


@dataclass(frozen=True, slots=True)
class PartitionStarted:
    t: float
    partition: int
    worker: int
    attempt: int
    items: int


@dataclass(frozen=True, slots=True)
class PartitionFinished:
    """A partition attempt that produced one output per item."""

    t: float
    partition: int
    worker: int
    attempt: int
    items: int
    service_s: float  # time inside the worker's model call
    latency_s: float  # submit to result


@dataclass(frozen=True, slots=True)
class PartitionFailed:
    """A partition attempt that failed. ``retry`` says what happens next."""

    t: float
    partition: int
    worker: int
    attempt: int
    items: int
    cause: str  # exception | timeout | crash | memory | load
    message: str
    retry: str  # "retry" (same partition again) | "split" (halves, to isolate) | "final"
    injected: bool = False
    backoff_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ItemsFailed:
    """Items whose outcome is a failure record, final."""

    t: float
    partition: int
    items: int
    cause: str


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    t: float
    worker: int
    pid: int
    load_s: float  # from start request to model loaded and ready
    replacing: int | None = None
    node: str | None = None  # the Ray node id of an actor (ray backend); None for local workers


@dataclass(frozen=True, slots=True)
class WorkerExited:
    t: float
    worker: int
    pid: int
    cause: str  # closed | retired | crash | timeout | memory | load | hedged (a hedge's loser, killed)
    exitcode: int | None = None
    signal: str | None = None
    injected: bool = False


@dataclass(frozen=True, slots=True)
class WorkerSample:
    worker: int
    pid: int
    cpu_percent: float
    rss_bytes: int
    threads: int | None = None  # the worker process's OS threads (the thread evidence)


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """Periodic per-worker CPU% (100 = one core) and RSS."""

    t: float
    workers: tuple[WorkerSample, ...]


@dataclass(frozen=True, slots=True)
class PartitionHedged:
    """A partition still running past the hedge delay was sent again, as a second copy, to an idle
    worker. ``hedges`` / ``completed`` (both cumulative) is the duplicate work so far."""

    t: float
    partition: int
    worker: int  # the idle worker that got the copy
    original: int  # the worker still running the first copy
    attempt: int
    items: int
    running_s: float  # how long the first copy had run
    hedges: int  # hedge copies sent so far, this one included
    completed: int  # partitions completed so far


@dataclass(frozen=True, slots=True)
class HedgeSettled:
    """A hedged partition got its outcome from ``winner``; the copy on ``loser`` is cancelled: with
    ``killed`` its worker was ended (and is replaced), else it runs to its end and its result is dropped."""

    t: float
    partition: int
    winner: int
    loser: int
    hedge_won: bool  # the hedge copy, not the original, came first
    killed: bool = False


@dataclass(frozen=True, slots=True)
class Resized:
    t: float
    old: int
    new: int


Event = (
    PartitionSubmitted
    | PartitionStarted
    | PartitionFinished
    | PartitionFailed
    | ItemsFailed
    | WorkerStarted
    | WorkerExited
    | ResourceSample
    | Resized
    | PartitionHedged
    | HedgeSettled
)
EventCallback = Callable[[Event], None]


class Emitter:
    """Delivers events to the engine's one listener, if any; a listener that raises is logged once and
    isolated, so its bug never takes the engine (and every caller's futures) down with it.

    Emitters of costly events test ``listener is not None`` first, so nobody builds an event
    nobody hears.
    """

    __slots__ = ("errors", "listener")

    def __init__(self, listener: EventCallback | None) -> None:
        self.listener = listener
        #: how many times the listener raised
        self.errors = 0

    def emit(self, event: Event) -> None:
        """Call the listener with ``event``."""
        listener = self.listener
        if listener is None:
            return
        try:
            listener(event)
        except Exception:
            self.errors += 1
            if self.errors == 1:
                log.error(
                    "the on_event listener raised on %s; the engine goes on (logged once)",
                    type(event).__name__,
                    exc_info=True,
                )
