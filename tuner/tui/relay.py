"""The bridge from a sweep's callback (worker thread) to Textual messages, coalesced.

A sweep reports windows, phases and engine notes as fast as they happen; in a fault storm that can
be hundreds of notes a second. Waking the UI for each would steal CPU from the very workers being
measured (2 cores!), so high-rate messages are buffered and flushed as one :class:`SweepBatch` at
most every ``interval_s``; the rare, important ones (a trial starts or ends, the sweep ends) flush
at once. A storm of notes is capped per batch; the log says how many were left out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from tuner.bench.online.messages import StepProgress
from tuner.bench.types import EngineNote, SweepMessage, WindowMeasured
from tuner.tui.messages import SweepBatch

FLUSH_INTERVAL_S = 0.25
MAX_NOTES_PER_BATCH = 40


class Relay:
    """Callable given to ``Sweep(on_message=...)``; posts :class:`SweepBatch` via ``post``."""

    def __init__(
        self,
        post: Callable[[Message], object],
        interval_s: float = FLUSH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._buffer: list[SweepMessage] = []
        self._notes = 0
        self._dropped = 0
        self._last_flush = clock()
        self.posted = 0  # batches posted, for tests and the overhead benchmark

    def __call__(self, msg: SweepMessage) -> None:
        with self._lock:
            if isinstance(msg, EngineNote):
                if self._notes >= MAX_NOTES_PER_BATCH:
                    self._dropped += 1
                    return
                self._notes += 1
            self._buffer.append(msg)
            # An online step's live figures come several times a second: coalesced like windows.
            urgent = not isinstance(msg, (WindowMeasured, EngineNote, StepProgress))
            due = self._clock() - self._last_flush >= self._interval
        if urgent or due:
            self.flush()

    def flush(self) -> None:
        """Post whatever is buffered (called at the end of the sweep too)."""
        with self._lock:
            if not self._buffer and not self._dropped:
                return
            batch = SweepBatch(self._buffer, self._dropped)
            self._buffer, self._notes, self._dropped = [], 0, 0
            self._last_flush = self._clock()
        self.posted += 1
        self._post(batch)
