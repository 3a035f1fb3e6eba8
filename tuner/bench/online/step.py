"""One step of open-loop load: send a schedule through ``Runtime.submit``, measure it, judge it.

::

    sender thread ── absolute deadlines t0 + offset[i] on time.perf_counter, catch-up when late ──┐
         │ rt.submit(item) for each item of request i (the deployed path: dynamic batcher, engine)│
         ▼                                                                                       │
    Runtime ── item futures ── done-callbacks (the runtime's completer thread): (i, t, ok) ──► log│
    measuring thread: every SAMPLE_S the items in flight (queue depth); every PROGRESS_S a live  │
    StepProgress (windowed histogram of finished requests, tuner.stats)  ◄─────────────────────────┘

**No coordinated omission** (wrk2, HdrHistogram): a request's latency is its completion (its last
item's outcome) minus its *intended* send time from the schedule, never minus the moment it was
actually sent. If the system stalls — or the sender itself is held up (a blocking ``submit`` under
backpressure, a GIL pause) — every request scheduled during the stall carries the stall in its
latency. The sender never sleeps a relative ``1/rate``: it sleeps until each absolute deadline and,
when late, sends what is due at once (catch-up), so lateness never turns into a lower rate.

**The generator says when it fell behind** (k6's ``dropped_iterations``): every request's lag
(actual − intended send time) is kept; ``late`` counts those past :data:`LATE_S`, and a step whose
generator sent fewer than :data:`ACHIEVED_SHARE` of its schedule by the step's end is marked
``generator_behind`` — not a sustainable step, whatever the latencies say.

**Definitions** (``D`` = step duration, ``t_end`` = start + ``D``):

* ``rate`` — intended requests/s: the schedule's requests / ``D``.
* ``offered`` — requests the generator actually sent before ``t_end``, / ``D``.
* ``achieved`` — requests of this step that completed successfully by ``t_end`` + the *drain
  allowance*, / ``D``. The drain allowance is the latency objective: a request sent at the very end
  that completes within the objective counts; one that needs longer would have broken the objective
  anyway. Failed and refused (``Overloaded``) requests never count.
* latency percentiles p50 p90 p95 p99 p99.9 (ms) — over every request sent in the step that
  succeeded, plus, counted at the time the runner stopped waiting (a lower bound, so never
  flattering), those still unfinished at the drain deadline; 95% CIs by bootstrap over requests.
  The one definition of :mod:`tuner.stats`.
* **queue not growing** — least-squares slope of the items in flight over the step's second half,
  in items/s: growing when the slope exceeds :data:`GROWTH_SHARE` of the offered item rate *and* is
  above zero by more than twice its standard error, widened for the samples' autocorrelation (so a
  queue wandering near saturation is not called growing). The test's resolution is its noise: in a
  short step, growth below about two standard errors is not seen; longer steps resolve finer.
* **sustainable** — achieved >= :data:`ACHIEVED_SHARE` × offered, the queue not growing, p99 <= the
  objective, and the generator kept its schedule.

After ``t_end`` the sender may catch up for one drain allowance (the objective) more; a schedule it
has not sent by then is left unsent (the step is already ``generator_behind``: a request sent that
late has missed the objective before it starts). Without that bound a schedule far past what one
Python sender can submit — a fast model's first step at a share of its closed-loop rate, millions
of requests — kept the step going for minutes and spent the whole online budget. Then the runner
waits for every request still in flight (the next step must start from an empty queue), up to
``drain_timeout_s``; what is left then is counted as unfinished.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner import fmt
from tuner.bench.online.messages import StepProgress
from tuner.bench.online.results import StepRaw, StepResult
from tuner.bench.online.schedule import Schedule
from tuner.engine import events as ev
from tuner.errors import Overloaded, TunerError
from tuner.stats import WindowedHistogram, bootstrap_ci, percentiles

if TYPE_CHECKING:
    from tuner.runtime import Runtime

__all__ = [
    "ACHIEVED_SHARE",
    "GROWTH_SHARE",
    "LATE_S",
    "PERCENTILES",
    "BatchCounter",
    "StepCancelled",
    "StepProgress",
    "StepRaw",
    "StepResult",
    "judge",
    "queue_trend",
    "run_step",
]

#: A sustainable step completes at least this share of what was offered (and the generator sends at
#: least this share of its schedule on time).
ACHIEVED_SHARE = 0.99
#: The queue grows when its second-half slope exceeds this share of the offered item rate.
GROWTH_SHARE = 0.01
#: A request sent later than this after its intended time counts as late (the generator's lag).
LATE_S = 0.002
#: Queue depth sampling period, and the live figures' period.
SAMPLE_S = 0.02
PROGRESS_S = 0.25
#: Live percentiles cover the requests finished in the last LIVE_SPAN_S.
LIVE_SPAN_S = 1.0
#: The sender starts this long after the runner is ready (thread start, first sleep).
START_LEAD_S = 0.01
#: Queue-depth points kept in a StepResult (the full series is downsampled to this many).
QUEUE_POINTS = 60
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}


class StepCancelled(TunerError):
    """The step was cancelled before its end (the sweep's cancel event)."""


class BatchCounter:
    """A runtime ``on_event`` callback counting the partitions the dynamic batcher formed, by size."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def __call__(self, event: ev.Event) -> None:
        # Emitted in the engine's supervisor thread: one dict update, nothing more.
        if isinstance(event, ev.PartitionSubmitted):
            self.counts[event.items] = self.counts.get(event.items, 0) + 1

    def take(self) -> dict[int, int]:
        """The counts so far, and start again from zero."""
        counts, self.counts = self.counts, {}
        return dict(sorted(counts.items()))


def queue_trend(samples: Sequence[tuple[float, float]], t_from: float) -> tuple[float, float]:
    """(slope, standard error) of least squares depth ~ time over the samples at or after ``t_from``.

    Queue depth samples 20 ms apart are strongly autocorrelated (a queue near saturation wanders
    slowly), so the textbook standard error — which assumes independent residuals — would be far too
    small and call a wandering queue "growing". It is widened by the usual AR(1) factor
    √((1 + r₁)/(1 − r₁)), r₁ the lag-1 autocorrelation of the residuals (capped at 0.95).
    """
    pts = [(t, d) for t, d in samples if t >= t_from]
    if len(pts) < 3:
        return 0.0, math.inf
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    x -= x.mean()
    sxx = float((x * x).sum())
    if sxx <= 0:
        return 0.0, math.inf
    slope = float((x * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - slope * x
    ss = float((resid * resid).sum())
    s2 = ss / (len(pts) - 2)
    r1 = float((resid[1:] * resid[:-1]).sum()) / ss if ss > 0 else 0.0
    r1 = min(max(r1, 0.0), 0.95)
    return slope, math.sqrt(s2 / sxx) * math.sqrt((1 + r1) / (1 - r1))


def judge(
    *,
    rate: float,
    offered: float,
    achieved: float,
    p99_ms: float | None,
    objective_ms: float,
    growing: bool,
    slope: float,
    rejected: int,
    failed: int,
    unfinished: int,
) -> tuple[bool, list[str]]:
    """The step's verdict and, when unsustainable, why (see the module docstring)."""
    reasons: list[str] = []
    if offered < ACHIEVED_SHARE * rate:
        reasons.append(
            f"generator behind: sent {offered / rate:.1%} of the schedule on time ({fmt.rate(offered)} of {fmt.rate(rate)}/s)"
        )
    if achieved < ACHIEVED_SHARE * offered:
        reasons.append(
            f"achieved {fmt.rate(achieved)}/s < {ACHIEVED_SHARE:.0%} of offered {fmt.rate(offered)}/s"
        )
    if growing:
        reasons.append(f"queue growing ({slope:+.4g} items/s)")
    if p99_ms is None:
        reasons.append("no request completed")
    elif p99_ms > objective_ms:
        reasons.append(f"p99 {fmt.ms(p99_ms)} > objective {objective_ms:g} ms")
    if rejected:
        reasons.append(f"{rejected} requests refused (Overloaded)")
    if failed:
        reasons.append(f"{failed} requests failed")
    if unfinished:
        reasons.append(f"{unfinished} requests unfinished after the drain")
    return not reasons, reasons


def _done(append: Callable[[tuple[int, float, bool]], None], i: int, fut: Future[Any]) -> None:
    # Runs in the runtime's completer thread (or the sender's, if already done): one append.
    append((i, time.perf_counter(), not fut.cancelled() and fut.exception() is None))


class _Sender(threading.Thread):
    """Sends the schedule on absolute deadlines; records when each request really went out."""

    def __init__(
        self, rt: Runtime, schedule: Schedule, items: Sequence[Any], t0: float, start_item: int
    ) -> None:
        super().__init__(name="tuner-load-sender", daemon=True)
        self.rt = rt
        self.schedule = schedule
        self.items = items
        self.t0 = t0
        self.pos = start_item
        self.sent_t = np.full(len(schedule), np.nan)
        self.log: list[tuple[int, float, bool]] = []
        self.rejected: set[int] = set()
        self.submitted = 0  # items accepted by the runtime (only this thread writes it)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        perf, sleep = time.perf_counter, time.sleep
        offsets = self.schedule.offsets.tolist()
        sizes = self.schedule.sizes.tolist()
        items, m = self.items, len(self.items)
        submit, append, t0, stop = self.rt.submit, self.log.append, self.t0, self.stop
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
                done = functools.partial(_done, append, i)
                for _ in range(sizes[i]):
                    item = items[pos]
                    pos = pos + 1 if pos + 1 < m else 0
                    try:
                        fut = submit(item)
                    except Overloaded:
                        self.rejected.add(i)
                        continue
                    self.submitted += 1
                    fut.add_done_callback(done)
        except BaseException as e:  # the runtime broke (EngineFailed, EngineClosed): say so, stop
            self.error = e
        finally:
            self.pos = pos


def run_step(
    rt: Runtime,
    schedule: Schedule,
    items: Sequence[Any],
    *,
    objective_ms: float,
    drain_timeout_s: float = 10.0,
    batches: BatchCounter | None = None,
    on_progress: Callable[[StepProgress], None] | None = None,
    cancel: threading.Event | None = None,
    candidate: int = 0,
    step: int = 0,
    start_item: int = 0,
    ci: bool = True,
) -> StepResult:
    """Run one step of ``schedule`` through ``rt.submit`` (a started runtime) and judge it.

    ``items``: the request items, cycled from ``start_item``; ``objective_ms``: the p99 objective,
    also the drain allowance (see the module docstring). Raises :class:`StepCancelled` when ``cancel``
    is set (the sender is stopped; requests in flight finish in the runtime), and the runtime's own
    error when it broke under the step.
    """
    if not items:
        raise TunerError("no input items to send")
    perf = time.perf_counter
    D = schedule.duration_s
    if batches is not None:
        batches.take()
    t0 = perf() + START_LEAD_S
    t_end = t0 + D
    sender = _Sender(rt, schedule, items, t0, start_item % len(items))
    live = WindowedHistogram(PROGRESS_S, LIVE_SPAN_S)
    remaining: dict[int, int] = {}
    intended = schedule.offsets + t0
    sizes = schedule.sizes
    log = sender.log
    seen = 0
    finished = 0  # requests whose every item has an outcome (live figure)
    samples: list[tuple[float, int]] = []

    def absorb() -> None:
        nonlocal seen, finished
        upto = len(log)
        for i, t, ok in log[seen:upto]:
            left = remaining.get(i, int(sizes[i])) - 1
            if left > 0:
                remaining[i] = left
                continue
            remaining.pop(i, None)
            finished += 1
            if ok:
                live.record(t, t - intended[i])
        seen = upto

    def progress(now: float) -> None:
        if on_progress is None:
            return
        absorb()
        hist, _ = live.window(now, LIVE_SPAN_S)
        p50, p99 = hist.percentiles((0.5, 0.99))
        sent = int(np.count_nonzero(~np.isnan(sender.sent_t)))
        on_progress(
            StepProgress(
                candidate, step, now - t0, schedule.rate, sent, finished,
                p50 * 1000, p99 * 1000, sender.submitted - len(log),
            )
        )  # fmt: skip

    sender.start()
    next_progress = t0 + PROGRESS_S
    try:
        while True:
            now = perf()
            if now >= t_end:
                break
            if cancel is not None and cancel.is_set():
                raise StepCancelled("cancelled")
            if sender.error is not None:
                break
            if now >= t0:
                samples.append((now - t0, sender.submitted - len(log)))
            if now >= next_progress:
                progress(now)
                next_progress += PROGRESS_S
            time.sleep(max(0.0, min(SAMPLE_S, t_end - now)))
        # The sender may still be catching up (its lag is recorded): for one drain allowance at
        # most, then what it has not sent stays unsent (see the module docstring).
        catch_up_end = t_end + objective_ms / 1000.0
        while sender.is_alive():
            if cancel is not None and cancel.is_set():
                raise StepCancelled("cancelled")
            if perf() >= catch_up_end:
                sender.stop.set()
            sender.join(0.05)
        if sender.error is not None:
            raise sender.error
        t_sent = perf()
        deadline = max(t_end, t_sent) + drain_timeout_s
        while len(log) < sender.submitted and perf() < deadline:
            if cancel is not None and cancel.is_set():
                raise StepCancelled("cancelled")
            time.sleep(0.005)
        t_stop = perf()
    finally:
        sender.stop.set()
        sender.join(5.0)
    return _result(
        schedule, sender, intended, t0, t_end, t_stop, samples, objective_ms,
        batches.take() if batches is not None else {}, ci,
    )  # fmt: skip


def _result(
    schedule: Schedule,
    sender: _Sender,
    intended: np.ndarray,
    t0: float,
    t_end: float,
    t_stop: float,
    samples: list[tuple[float, int]],
    objective_ms: float,
    batch_counts: dict[int, int],
    ci: bool,
) -> StepResult:
    n = len(schedule)
    D = schedule.duration_s
    sizes = schedule.sizes
    sent_t = sender.sent_t
    sent = ~np.isnan(sent_t)
    log = np.array(sender.log, dtype=float).reshape(-1, 3)
    idx = log[:, 0].astype(np.int64)
    t_done = np.full(n, -np.inf)
    np.maximum.at(t_done, idx, log[:, 1])
    reported = np.bincount(idx, minlength=n)
    bad = np.bincount(idx, weights=1.0 - log[:, 2], minlength=n) > 0
    rejected = np.zeros(n, dtype=bool)
    if sender.rejected:
        rejected[list(sender.rejected)] = True
    complete = sent & ~rejected & (reported == sizes)
    success = complete & ~bad
    failed = sent & ~rejected & bad
    unfinished = sent & ~rejected & ~bad & ~complete
    allowance = objective_ms / 1000.0
    in_time = success & (t_done <= t_end + allowance)
    offered = float(np.count_nonzero(sent & (sent_t < t_end))) / D
    achieved = float(np.count_nonzero(in_time)) / D
    lat = np.concatenate([t_done[success] - intended[success], t_stop - intended[unfinished]])
    latency: dict[str, float] = {}
    latency_ci: dict[str, tuple[float, float]] = {}
    if lat.size:
        qs = list(PERCENTILES.values())
        vals = percentiles(lat, qs)
        cis = bootstrap_ci(lat, None, qs) if ci else [(v, v) for v in vals]
        for key, v, (lo, hi) in zip(PERCENTILES, vals, cis, strict=True):
            latency[key] = round(v * 1000, 4)
            latency_ci[key] = (round(lo * 1000, 4), round(hi * 1000, 4))
    lag = sent_t[sent] - intended[sent]
    late = int(np.count_nonzero(lag > LATE_S))
    max_lag = float(lag.max()) * 1000 if lag.size else 0.0
    item_rate = offered * (float(sizes.mean()) if n else 1.0)
    slope, se = queue_trend(samples, D / 2)
    growing = slope > GROWTH_SHARE * item_rate and slope - 2 * se > 0
    rate = schedule.rate
    n_rej, n_fail, n_unf = int(rejected.sum()), int(failed.sum()), int(unfinished.sum())
    ok, reasons = judge(
        rate=rate,
        offered=offered,
        achieved=achieved,
        p99_ms=latency.get("p99"),
        objective_ms=objective_ms,
        growing=growing,
        slope=slope,
        rejected=n_rej,
        failed=n_fail,
        unfinished=n_unf,
    )
    stride = max(1, math.ceil(len(samples) / QUEUE_POINTS))
    return StepResult(
        rate=round(rate, 3),
        duration_s=D,
        objective_ms=objective_ms,
        requests=n,
        sent=int(sent.sum()),
        offered=round(offered, 3),
        achieved=round(achieved, 3),
        completed=int(success.sum()),
        failed=n_fail,
        rejected=n_rej,
        unfinished=n_unf,
        items_per_request=round(float(sizes.mean()), 4) if n else 1.0,
        latency_ms=latency,
        latency_ci_ms=latency_ci,
        queue=[(round(t, 3), int(d)) for t, d in samples[::stride]],
        queue_slope=round(slope, 3),
        queue_growing=bool(growing),
        batches=batch_counts,
        late=late,
        max_lag_ms=round(max_lag, 3),
        generator_behind=offered < ACHIEVED_SHARE * rate,
        sustainable=ok,
        reasons=reasons,
        raw=StepRaw(
            intended_s=intended - t0,
            sent_s=sent_t - t0,
            latency_s=np.where(success, t_done - intended, np.nan),
        ),
    )
