"""A trial's engine events as a person reads them: an incident timeline, and the faults counted.

:class:`Collector` takes the engine's events on its supervisor thread (an append, nothing more);
:class:`Notes` turns them, on the measuring thread, into :class:`~tuner.bench.types.EngineNote`
lines — "worker 2 (pid 41873) crashed: exit 1 (injected) — partition 118 retried, attempt 2/4" —
at most :data:`NOTES_PER_S` a second (the rest summarised), and counts faults and failures.
"""

from __future__ import annotations

import time
from collections import deque

from tuner.bench.types import EngineNote, SweepCallback
from tuner.engine import events as ev

__all__ = ["NOTES_PER_S", "Collector", "Notes"]

#: Event-log lines per second before the rest are summarised (a 5% crash rate must not flood a UI).
NOTES_PER_S = 4


class Collector:
    """Receives engine events on the supervisor thread (append only: the callback must be quick)."""

    def __init__(self) -> None:
        self.events: deque[ev.Event] = deque()

    def __call__(self, event: ev.Event) -> None:
        if not isinstance(event, (ev.PartitionSubmitted, ev.PartitionStarted)):
            self.events.append(event)


class Notes:
    """Turns engine events into incident-timeline lines (EngineNote) and counts faults."""

    def __init__(
        self, index: int, t0: float, retries: int, emit: SweepCallback | None, timeout_s: float | None
    ) -> None:
        self.index = index
        self.t0 = t0
        self.retries = retries
        self.emit = emit
        self.timeout_s = timeout_s
        self.sent = 0  # notes sent in the current second
        self.second = 0.0
        self.suppressed = 0
        self.faults_seen: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.retried = 0
        # worker id -> the first half of a line waiting for its replacement to come up
        self.waiting: dict[int, tuple[float, str, str]] = {}
        self.crashed: dict[int, ev.WorkerExited] = {}

    def note(self, t: float, text: str, level: str) -> None:
        if self.emit is None:
            return
        if t - self.second >= 1.0:
            self._summarise(t)
            self.second = t
            self.sent = 0
        if self.sent >= NOTES_PER_S:
            self.suppressed += 1
            return
        self.sent += 1
        self.emit(EngineNote(self.index, max(0.0, t - self.t0), text, level))

    def _summarise(self, t: float) -> None:
        if self.suppressed and self.emit is not None:
            n = self.suppressed
            text = f"… {n} more engine event{'s' if n != 1 else ''} not shown"
            self.emit(EngineNote(self.index, max(0.0, t - self.t0), text, "info"))
        self.suppressed = 0

    def handle(self, e: ev.Event) -> None:
        if isinstance(e, ev.WorkerExited):
            if e.cause == "crash":
                self.crashed[e.worker] = e
        elif isinstance(e, ev.PartitionFailed):
            self._failed(e)
        elif isinstance(e, ev.ItemsFailed):
            self.failures[e.cause] = self.failures.get(e.cause, 0) + e.items
            self.note(e.t, f"{e.items} item{'s' if e.items != 1 else ''} failed for good: {e.cause}", "error")
        elif isinstance(e, ev.WorkerStarted) and e.replacing is not None:
            pending = self.waiting.pop(e.replacing, None)
            if pending is not None:
                t, head, tail = pending
                self.note(t, f"{head}, replaced in {e.load_s:.2f} s{tail}", "warning")

    def _failed(self, e: ev.PartitionFailed) -> None:
        self.faults_seen[e.cause] = self.faults_seen.get(e.cause, 0) + 1
        if e.retry == "retry":
            self.retried += 1
            what = f"retried, attempt {e.attempt + 1}/{self.retries + 1}"
        elif e.retry == "split":
            what = "split in halves to isolate the failing items"
        else:
            what = "failed for good"
        tag = " (injected)" if e.injected else ""
        level = "warning" if e.injected else "error"
        if e.cause == "crash":
            dead = self.crashed.pop(e.worker, None)
            if dead is not None:
                how = f"killed by {dead.signal}" if dead.signal else f"exit {dead.exitcode}"
                head = f"worker {e.worker} (pid {dead.pid}) crashed: {how}{tag}"
            else:
                head = f"{e.message}{tag}"
            self.note(e.t, f"{head} — partition {e.partition} {what}", level)
        elif e.cause in ("timeout", "memory"):
            if e.cause == "timeout":
                head = f"partition {e.partition} timed out after {self.timeout_s or 0:g} s{tag} — worker {e.worker} terminated"
            else:
                head = f"partition {e.partition}: worker {e.worker} over its memory limit{tag} — killed"
            # Wait for the replacement to say how long it took; flushed at the end if it never comes.
            self.waiting[e.worker] = (e.t, head, f", {what}")
        else:
            self.note(e.t, f"partition {e.partition} raised {e.message}{tag} — {what}", level)

    def flush(self) -> None:
        for t, head, tail in self.waiting.values():
            self.note(t, f"{head}{tail}", "warning")
        self.waiting.clear()
        # A worker that died with nothing in flight (no PartitionFailed to pair it with).
        for dead in self.crashed.values():
            how = f"killed by {dead.signal}" if dead.signal else f"exit {dead.exitcode}"
            tag = " (injected)" if dead.injected else ""
            self.note(
                dead.t, f"worker {dead.worker} (pid {dead.pid}) crashed: {how}{tag} — replaced", "warning"
            )
        self.crashed.clear()
        self._summarise(time.perf_counter())
