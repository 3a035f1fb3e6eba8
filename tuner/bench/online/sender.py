"""The open-loop sender: a schedule sent on absolute deadlines to a :class:`Sink`.

A sink is where the load goes — the runtime (:class:`RuntimeSink`, ``Runtime.submit`` per item,
the deployed path) or, for ``tuner bench --online --url``, a running server
(:class:`tuner.bench.online.http.HttpSink`) — and reports every outcome back to the sender's
:class:`Outcomes`: ``done(i, t, ok, n)``, request ``i`` had ``n`` of its items finish at ``t``
(``time.perf_counter``), successfully or not; ``refuse(i)``, request ``i`` was refused (the
runtime's ``Overloaded``, a server's 503) and never counts as achieved. The step
(:mod:`tuner.bench.online.step`) reads that log; the sender only keeps the schedule and records
when each request really went out.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tuner.bench.online.schedule import Schedule
from tuner.errors import Overloaded

if TYPE_CHECKING:
    from tuner.runtime import Runtime

__all__ = ["Outcomes", "RuntimeSink", "Sender", "Sink"]


class Outcomes(Protocol):
    """What a sink reports to, from any thread."""

    def done(self, i: int, t: float, ok: bool, n: int) -> None:
        """``n`` items of request ``i`` finished at ``t`` (perf_counter), all ok or not."""

    def refuse(self, i: int) -> None:
        """Request ``i`` was refused (Overloaded, 503): it never counts as achieved."""


class Sink(Protocol):
    """Where a step's requests go."""

    def send(self, i: int, items: Sequence[Any], out: Outcomes) -> int:
        """Send request ``i`` (its ``items``) and report its outcome to ``out``, now or later;
        returns the items accepted (those whose outcome ``out.done`` will count)."""
        ...


def _item_done(out: Outcomes, i: int, fut: Future[Any]) -> None:
    # Runs in the runtime's completer thread (or the sender's, if already done): one append.
    out.done(i, time.perf_counter(), not fut.cancelled() and fut.exception() is None, 1)


class RuntimeSink:
    """The runtime: each item through ``Runtime.submit`` (its dynamic batcher, its engine)."""

    def __init__(self, rt: Runtime) -> None:
        self.submit = rt.submit

    def send(self, i: int, items: Sequence[Any], out: Outcomes) -> int:
        callback = functools.partial(_item_done, out, i)
        accepted = 0
        for item in items:
            try:
                fut = self.submit(item)
            except Overloaded:
                out.refuse(i)
                continue
            accepted += 1
            fut.add_done_callback(callback)
        return accepted


class Sender(threading.Thread):
    """Sends the schedule on absolute deadlines; records when each request really went out."""

    def __init__(
        self, sink: Sink, schedule: Schedule, items: Sequence[Any], t0: float, start_item: int
    ) -> None:
        super().__init__(name="tuner-load-sender", daemon=True)
        self.sink = sink
        self.schedule = schedule
        self.items = items
        self.t0 = t0
        self.pos = start_item
        self.sent_t = np.full(len(schedule), np.nan)
        self.log: list[tuple[int, float, bool, int]] = []  # (request, t, ok, items): appended by sinks
        self.rejected: set[int] = set()
        self.submitted = 0  # items accepted by the sink (only this thread writes it)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def done(self, i: int, t: float, ok: bool, n: int) -> None:
        """The sink's report (any thread): one append, atomic under the GIL."""
        self.log.append((i, t, ok, n))

    def refuse(self, i: int) -> None:
        """The sink refused request ``i`` (any thread): one set add, atomic under the GIL."""
        self.rejected.add(i)

    def run(self) -> None:
        perf, sleep = time.perf_counter, time.sleep
        offsets = self.schedule.offsets.tolist()
        sizes = self.schedule.sizes.tolist()
        items, m = self.items, len(self.items)
        send, t0, stop = self.sink.send, self.t0, self.stop
        sent_t = self.sent_t
        pos = self.pos
        try:
            for i, off in enumerate(offsets):
                wait = t0 + off - perf()
                if wait > 0:
                    sleep(wait)  # to an absolute deadline: the error of one sleep is not carried on
                if stop.is_set():
                    break
                sent_t[i] = perf()
                request = [items[(pos + k) % m] for k in range(sizes[i])]
                pos = (pos + sizes[i]) % m
                self.submitted += send(i, request, self)
        except BaseException as e:  # the sink broke (EngineFailed, EngineClosed): say so, stop
            self.error = e
        finally:
            self.pos = pos
