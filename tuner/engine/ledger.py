"""The engine's bookkeeping: which items have an outcome, what runs next, what is retried or split.

Pure: no processes, sockets or threads. The supervisor (``supervisor.py``) owns one :class:`Ledger` and
tells it what happened — a part was sent, finished, failed, or came back unstarted from a dead
worker — passing the time explicitly, so the tests drive it with a fake clock.

Vocabulary:

- a **job** is one ``submit()``: a future and one outcome slot per item;
- a **part** is a slice of a job sent to a worker as one partition. A job starts as one part; a
  part that fails for good is split in halves (to isolate the failing items) until single items
  fail alone.

Rules (guarantee 1 of DESIGN.md): every item of a job gets exactly one outcome; the future is
settled once, with outputs in input order. A part may be *executed* more than once (a retry, or —
with hedging — two copies at once on two workers): the first outcome wins and any later word
about the same part is ignored (:meth:`Ledger.finished` returns False). A failure of one copy
while another copy still runs decides nothing: the running copy will.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from tuner.engine.config import Backoff, Failure

#: causes that are always retried (within ``retries``): the worker, not the item, may be at fault.
ALWAYS_RETRIED = frozenset({"crash", "timeout", "memory"})

#: what :meth:`Ledger.failed` decided
RETRY, SPLIT, FINAL, IGNORED = "retry", "split", "final", "ignored"

_EMPTY: Any = object()  # an outcome slot not filled yet (None is a legitimate output)


class PartitionResult:
    """The outcome of one submitted partition: one entry per item, in order.

    ``outputs`` is what the model returned (a list or array) when every item succeeded; when some
    failed for good it is a list with a :class:`Failure` in place of each failed item's output.
    """

    __slots__ = (
        "attempts",
        "failed",
        "first_item",
        "latency_s",
        "outputs",
        "service_s",
        "t_done",
        "t_submit",
    )

    def __init__(
        self,
        outputs: Sequence[Any],
        failed: int,
        first_item: int,
        t_submit: float,
        t_done: float,
        service_s: float,
        attempts: int,
    ) -> None:
        self.outputs = outputs
        self.failed = failed
        self.first_item = first_item
        self.t_submit = t_submit
        self.t_done = t_done
        self.latency_s = t_done - t_submit
        self.service_s = service_s
        self.attempts = attempts

    @property
    def ok(self) -> bool:
        """True when every item has its output (no failure record)."""
        return self.failed == 0

    def __len__(self) -> int:
        return len(self.outputs)

    def failures(self) -> list[tuple[int, Failure]]:
        """(item index within the partition, failure) for each failed item."""
        if not self.failed:
            return []
        return [(i, o) for i, o in enumerate(self.outputs) if isinstance(o, Failure)]


class Job:
    """One submit(): a future and the outcomes of its items, filled by one or more parts."""

    __slots__ = (
        "attempts",
        "done",
        "failed",
        "first",
        "future",
        "id",
        "items",
        "n",
        "remaining",
        "service_s",
        "slots",
        "t",
    )

    def __init__(self, jid: int, items: Any, first: int, future: Future[PartitionResult], t: float) -> None:
        self.id = jid
        self.items = items
        self.n = len(items)
        self.first = first  # index of the first item in the caller's stream
        self.future = future
        self.t = t  # submit time
        self.slots: list[Any] | None = None  # outcomes, once more than one part contributes
        self.remaining = self.n
        self.failed = 0
        self.service_s = 0.0
        self.attempts = 0
        self.done = False  # settled (result, failure, cancelled or engine error): nothing more counts


class Part:
    """A slice of a job sent to a worker as one partition."""

    __slots__ = (
        "attempt",
        "copy",
        "done",
        "exact",
        "first",
        "id",
        "items",
        "job",
        "n",
        "offset",
        "runs",
        "total",
    )

    def __init__(
        self, pid: int, job: Job, offset: int, items: Any, total: int = 0, exact: bool = False
    ) -> None:
        self.id = pid
        self.job = job
        self.offset = offset  # within the job
        self.items = items
        self.n = len(items)
        self.first = job.first + offset
        self.attempt = 0  # failed attempts at this size
        self.total = total  # failed attempts of these items, all sizes
        self.runs = 0  # copies running or queued on workers right now
        self.done = False  # its outcome is recorded (or it was split): later words about it are ignored
        # A worker may hold back results of tiny partitions to send several at once; a part re-run
        # after a crash or timeout is "exact": sent alone, so the next death is charged to the part
        # that really caused it.
        self.exact = exact
        # Which copy a send is, read by the worker handle as it sends: 0 the first, 1 a hedge copy
        # running beside it (its worker draws injected faults under its own key).
        self.copy = 0


class Ledger:
    """Jobs, parts, retries and outcomes. Owned by one thread (the supervisor); no I/O.

    ``settled(future)`` is called once per job when its future is settled (or dropped), so the
    owner can keep its count of outstanding work.
    """

    def __init__(
        self,
        *,
        retries: int,
        retry_on: Iterable[str] = (),
        isolate: bool = True,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        settled: Callable[[Future[PartitionResult]], None] | None = None,
    ) -> None:
        self.retries = retries
        self.retry_on = frozenset(retry_on)
        self.isolate = isolate
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random(0)
        self._settled = settled or (lambda f: None)
        #: parts waiting to be sent, in order; retries and split halves go to the front
        self.pending: deque[Part] = deque()
        self._retries: list[tuple[float, int, Part]] = []  # (due time, part id, part), a heap
        self._open: dict[int, Job] = {}
        #: ids for jobs and parts (the events name partitions by them); thread-safe in CPython
        self.next_id: Callable[[], int] = itertools.count().__next__
        # counters
        self.items_done = 0
        self.items_failed = 0
        self.retried = 0

    # -- intake and dispatch ------------------------------------------------------------------------
    def add(self, job: Job) -> Part:
        """Open a job: its first part (all of it) joins the end of the queue."""
        self._open[job.id] = job
        part = Part(job.id, job, 0, job.items)
        self.pending.append(part)
        return part

    def take(self) -> Part | None:
        """The next part to send, or None. Parts of jobs settled meanwhile (cancelled) are dropped."""
        pending = self.pending
        while pending:
            part = pending.popleft()
            job = part.job
            if job.done:
                continue
            if job.future.cancelled():  # the caller no longer wants it: it never runs
                self._drop(job)
                continue
            return part
        return None

    def sent(self, part: Part) -> None:
        """A copy of ``part`` went to a worker."""
        part.runs += 1

    def put_back(self, part: Part) -> None:
        """A copy that never started (queued behind a dead worker's partition): front of the queue,
        no attempt counted, sent alone from now on."""
        part.runs -= 1
        part.exact = True
        if not part.done and not part.job.done and part.runs == 0:
            self.pending.appendleft(part)

    # -- outcomes -----------------------------------------------------------------------------------
    def finished(self, part: Part, outputs: Any, service_s: float, now: float) -> bool:
        """A copy produced one output per item. False if the part already had its outcome (ignored)."""
        part.runs -= 1
        job = part.job
        if part.done or job.done:
            return False
        part.done = True
        job.service_s += service_s
        if part.total + 1 > job.attempts:
            job.attempts = part.total + 1
        self.items_done += part.n
        if part.n == job.n:
            job.remaining = 0
            self._settle(job, outputs, now)
            return True
        slots = job.slots
        if slots is None:
            slots = job.slots = [_EMPTY] * job.n
        slots[part.offset : part.offset + part.n] = list(outputs)
        job.remaining -= part.n
        if job.remaining == 0:
            self._settle(job, slots, now)
        return True

    def failed(
        self, part: Part, cause: str, message: str, now: float, service_s: float = 0.0, **details: Any
    ) -> tuple[str, float]:
        """A copy failed: ``(decision, backoff_s)``, decision one of retry, split, final, ignored.

        ``retry``: the part runs again after ``backoff_s`` (full-jitter exponential). ``split``:
        its halves go to the front of the queue. ``final``: its items get a :class:`Failure`.
        ``ignored``: the part already has its outcome, or another copy of it still runs.
        """
        part.runs -= 1
        job = part.job
        if part.done or job.done or part.runs > 0:
            return IGNORED, 0.0
        job.service_s += service_s
        part.attempt += 1
        part.total += 1
        retryable = cause in ALWAYS_RETRIED or (
            cause == "exception" and details.get("exc_type") in self.retry_on
        )
        if retryable and part.attempt <= self.retries:
            backoff = self.backoff.delay(part.attempt, self.rng)
            heapq.heappush(self._retries, (now + backoff, part.id, part))
            self.retried += 1
            return RETRY, backoff
        part.done = True
        if self.isolate and part.n > 1:
            mid = part.n // 2
            left = Part(self.next_id(), job, part.offset, part.items[:mid], part.total, part.exact)
            right = Part(self.next_id(), job, part.offset + mid, part.items[mid:], part.total, part.exact)
            self.pending.appendleft(right)
            self.pending.appendleft(left)
            return SPLIT, 0.0
        self._fill(job, part.offset, part.n, Failure(cause, message, part.total, **details), now)
        return FINAL, 0.0

    # -- time ---------------------------------------------------------------------------------------
    def next_retry(self) -> float | None:
        """When the earliest retry is due, or None."""
        return self._retries[0][0] if self._retries else None

    def release_due(self, now: float) -> None:
        """Retries due by ``now`` go to the front of the queue, earliest first."""
        due = []
        while self._retries and self._retries[0][0] <= now:
            due.append(heapq.heappop(self._retries)[2])
        for part in reversed(due):
            self.pending.appendleft(part)

    # -- ending -------------------------------------------------------------------------------------
    @property
    def open_jobs(self) -> int:
        """Jobs not settled yet."""
        return len(self._open)

    def fail_all(self, failure: Failure, now: float) -> None:
        """Every item without an outcome gets ``failure`` (the model can no longer load)."""
        for job in list(self._open.values()):
            n = job.remaining
            if job.slots is None:
                job.slots = [failure] * job.n
            else:
                job.slots = [failure if s is _EMPTY else s for s in job.slots]
            job.failed += n
            job.remaining = 0
            self.items_failed += n
            self._settle(job, job.slots, now)
        self._clear_queues()

    def cancel_all(self) -> None:
        """Cancel every open job's future (the engine is closing)."""
        for job in list(self._open.values()):
            job.future.cancel()
            self._drop(job)
        self._clear_queues()

    def abort_all(self, error: BaseException) -> None:
        """Settle every open job's future with ``error`` (the engine itself failed)."""
        for job in list(self._open.values()):
            try:
                job.future.set_exception(error)
            except InvalidStateError:  # cancelled by the caller meanwhile
                pass
            self._drop(job)
        self._clear_queues()

    # -- internals ----------------------------------------------------------------------------------
    def _fill(self, job: Job, offset: int, n: int, failure: Failure, now: float) -> None:
        slots = job.slots
        if slots is None:
            slots = job.slots = [_EMPTY] * job.n
        slots[offset : offset + n] = [failure] * n
        job.failed += n
        job.remaining -= n
        self.items_failed += n
        if failure.attempts > job.attempts:
            job.attempts = failure.attempts
        if job.remaining == 0:
            self._settle(job, slots, now)

    def _settle(self, job: Job, outputs: Sequence[Any], now: float) -> None:
        job.done = True
        self._open.pop(job.id, None)
        result = PartitionResult(outputs, job.failed, job.first, job.t, now, job.service_s, job.attempts)
        try:
            job.future.set_result(result)
        except InvalidStateError:  # the caller cancelled it while it ran: nobody wants the result
            pass
        self._settled(job.future)

    def _drop(self, job: Job) -> None:
        job.done = True
        self._open.pop(job.id, None)
        self._settled(job.future)

    def _clear_queues(self) -> None:
        self.pending.clear()
        self._retries.clear()
