"""One step of open-loop load: send a schedule through ``Runtime.submit``, measure it, judge it.

::

    sender thread ── absolute deadlines t0 + offset[i] on time.perf_counter, catch-up when late ──┐
         │ sink.send(request i): rt.submit(item) for each of its items (the deployed path:       │
         │ dynamic batcher, engine), or one HTTP request to a server (tuner.bench.online.sender)  │
         ▼                                                                                       │
    Runtime ── item futures ── done-callbacks (the runtime's completer thread): (i, t, ok, n) ─► log
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

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner import fmt
from tuner.bench.online.messages import StepProgress
from tuner.bench.online.results import StepRaw, StepResult
from tuner.bench.online.schedule import Schedule
from tuner.bench.online.sender import RuntimeSink, Sender, Sink
from tuner.engine import events as ev
from tuner.errors import TunerError
from tuner.stats import WindowedHistogram, bootstrap_ci, percentiles

if TYPE_CHECKING:
    from tuner.hostload import HostSampler
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
        reasons.append(f"queue growing (+{fmt.rate(slope)} items/s)")
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


class _StepRun:
    """One step in progress: the sender's log read as it grows (live figures, queue depth), then
    the catch-up, the drain and the result."""

    def __init__(
        self,
        sender: Sender,
        schedule: Schedule,
        t0: float,
        objective_ms: float,
        on_progress: Callable[[StepProgress], None] | None,
        cancel: threading.Event | None,
        where: tuple[int, int],
    ) -> None:
        self.sender, self.schedule, self.t0 = sender, schedule, t0
        self.t_end = t0 + schedule.duration_s
        self.objective_ms = objective_ms
        self.on_progress, self.cancel, self.where = on_progress, cancel, where
        self.intended = schedule.offsets + t0
        self.live = WindowedHistogram(PROGRESS_S, LIVE_SPAN_S)
        self.remaining: dict[int, int] = {}
        self.seen = 0  # log entries read
        self.items_done = 0  # items with an outcome
        self.finished = 0  # requests whose every item has an outcome (live figure)
        self.samples: list[tuple[float, int]] = []  # (seconds into the step, items in flight)

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise StepCancelled("cancelled")

    def absorb(self) -> None:
        """Read the log's new entries: requests finished, their latency into the live histogram."""
        log, sizes = self.sender.log, self.schedule.sizes
        upto = len(log)
        for i, t, ok, n in log[self.seen : upto]:
            self.items_done += n
            left = self.remaining.get(i, int(sizes[i])) - n
            if left > 0:
                self.remaining[i] = left
                continue
            self.remaining.pop(i, None)
            self.finished += 1
            if ok:
                self.live.record(t, t - self.intended[i])
        self.seen = upto

    def in_flight(self) -> int:
        return self.sender.submitted - self.items_done

    def progress(self, now: float) -> None:
        if self.on_progress is None:
            return
        hist, _ = self.live.window(now, LIVE_SPAN_S)
        p50, p99 = hist.percentiles((0.5, 0.99))
        sent = int(np.count_nonzero(~np.isnan(self.sender.sent_t)))
        candidate, step = self.where
        self.on_progress(
            StepProgress(
                candidate, step, now - self.t0, self.schedule.rate, sent, self.finished,
                p50 * 1000, p99 * 1000, self.in_flight(),
            )
        )  # fmt: skip

    def measure(self) -> None:
        """Until the step's end: the queue depth every SAMPLE_S, live figures every PROGRESS_S."""
        perf = time.perf_counter
        next_progress = self.t0 + PROGRESS_S
        while (now := perf()) < self.t_end:
            self._check()
            if self.sender.error is not None:
                return
            self.absorb()
            if now >= self.t0:
                self.samples.append((now - self.t0, self.in_flight()))
            if now >= next_progress:
                self.progress(now)
                next_progress += PROGRESS_S
            time.sleep(max(0.0, min(SAMPLE_S, self.t_end - now)))

    def catch_up(self) -> None:
        """The sender may still be catching up (its lag is recorded): for one drain allowance at
        most, then what it has not sent stays unsent (see the module docstring)."""
        end = self.t_end + self.objective_ms / 1000.0
        while self.sender.is_alive():
            self._check()
            if time.perf_counter() >= end:
                self.sender.stop.set()
            self.sender.join(0.05)
        if self.sender.error is not None:
            raise self.sender.error

    def drain(self, timeout_s: float) -> float:
        """Wait for every item in flight (the next step starts from an empty queue), up to
        ``timeout_s``; returns when the runner stopped waiting."""
        deadline = max(self.t_end, time.perf_counter()) + timeout_s
        while True:
            self.absorb()
            if self.in_flight() <= 0 or time.perf_counter() >= deadline:
                return time.perf_counter()
            self._check()
            time.sleep(0.005)


def run_step(
    rt: Runtime | Sink,
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
    sampler: HostSampler | None = None,
) -> StepResult:
    """Run one step of ``schedule`` through ``rt`` — a started runtime (``rt.submit``) or any
    :class:`~tuner.bench.online.sender.Sink` (a server) — and judge it.

    ``sampler``: rooted at the serving side (this process for a runtime, the server's process over
    HTTP on this host): the step records the cores it used and the outside load.

    ``items``: the request items, cycled from ``start_item``; ``objective_ms``: the p99 objective,
    also the drain allowance (see the module docstring). Raises :class:`StepCancelled` when ``cancel``
    is set (the sender is stopped; requests in flight finish in the runtime), and the runtime's own
    error when it broke under the step.
    """
    if len(items) == 0:
        raise TunerError("no input items to send")
    sink: Sink = rt if hasattr(rt, "send") else RuntimeSink(rt)
    if batches is not None:
        batches.take()
    t0 = time.perf_counter() + START_LEAD_S
    sender = Sender(sink, schedule, items, t0, start_item % len(items))
    run = _StepRun(sender, schedule, t0, objective_ms, on_progress, cancel, (candidate, step))
    before = sampler.snapshot() if sampler is not None else None
    sender.start()
    try:
        run.measure()
        run.catch_up()
        t_stop = run.drain(drain_timeout_s)
    finally:
        sender.stop.set()
        sender.join(5.0)
    batch_counts = batches.take() if batches is not None else {}
    result = _result(run, t_stop, batch_counts, ci)
    if sampler is not None and before is not None:
        iv = sampler.interval(before, sampler.snapshot())
        result = replace(
            result, cpu_cores=round(iv.own * sampler.usable_cores, 3), outside=round(iv.outside, 3)
        )
    return result


@dataclass(frozen=True)
class _Outcomes:
    """Each request's fate, as boolean masks over the schedule, and when it finished."""

    sent: np.ndarray
    rejected: np.ndarray
    success: np.ndarray
    failed: np.ndarray
    unfinished: np.ndarray
    t_done: np.ndarray  # its last item's outcome (-inf: none)

    @classmethod
    def of(cls, sender: Sender, sizes: np.ndarray) -> _Outcomes:
        n = len(sizes)
        log = np.array(sender.log, dtype=float).reshape(-1, 4)
        idx = log[:, 0].astype(np.int64)
        t_done = np.full(n, -np.inf)
        np.maximum.at(t_done, idx, log[:, 1])
        reported = np.bincount(idx, weights=log[:, 3], minlength=n)
        bad = np.bincount(idx, weights=1.0 - log[:, 2], minlength=n) > 0
        rejected = np.zeros(n, dtype=bool)
        if sender.rejected:
            rejected[list(sender.rejected)] = True
        sent = ~np.isnan(sender.sent_t)
        complete = sent & ~rejected & (reported >= sizes)
        return cls(
            sent=sent,
            rejected=rejected,
            success=complete & ~bad,
            failed=sent & ~rejected & bad,
            unfinished=sent & ~rejected & ~bad & ~complete,
            t_done=t_done,
        )


def _latencies(
    o: _Outcomes, intended: np.ndarray, t_stop: float, ci: bool
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Request latency percentiles (ms) and their CIs: the successes, and the unfinished counted
    at the time the runner stopped waiting (a lower bound, never flattering)."""
    lat = np.concatenate([o.t_done[o.success] - intended[o.success], t_stop - intended[o.unfinished]])
    latency: dict[str, float] = {}
    latency_ci: dict[str, tuple[float, float]] = {}
    if lat.size:
        qs = list(PERCENTILES.values())
        vals = percentiles(lat, qs)
        cis = bootstrap_ci(lat, None, qs) if ci else [(v, v) for v in vals]
        for key, v, (lo, hi) in zip(PERCENTILES, vals, cis, strict=True):
            latency[key] = round(v * 1000, 4)
            latency_ci[key] = (round(lo * 1000, 4), round(hi * 1000, 4))
    return latency, latency_ci


def _result(run: _StepRun, t_stop: float, batch_counts: dict[int, int], ci: bool) -> StepResult:
    schedule, sender = run.schedule, run.sender
    n, D, sizes = len(schedule), schedule.duration_s, schedule.sizes
    o = _Outcomes.of(sender, sizes)
    in_time = o.success & (o.t_done <= run.t_end + run.objective_ms / 1000.0)
    offered = float(np.count_nonzero(o.sent & (sender.sent_t < run.t_end))) / D
    achieved = float(np.count_nonzero(in_time)) / D
    latency, latency_ci = _latencies(o, run.intended, t_stop, ci)
    lag = sender.sent_t[o.sent] - run.intended[o.sent]
    item_rate = offered * (float(sizes.mean()) if n else 1.0)
    slope, se = queue_trend(run.samples, D / 2)
    growing = slope > GROWTH_SHARE * item_rate and slope - 2 * se > 0
    n_rej, n_fail, n_unf = int(o.rejected.sum()), int(o.failed.sum()), int(o.unfinished.sum())
    ok, reasons = judge(
        rate=schedule.rate, offered=offered, achieved=achieved, p99_ms=latency.get("p99"),
        objective_ms=run.objective_ms, growing=growing, slope=slope,
        rejected=n_rej, failed=n_fail, unfinished=n_unf,
    )  # fmt: skip
    stride = max(1, math.ceil(len(run.samples) / QUEUE_POINTS))
    return StepResult(
        rate=round(schedule.rate, 3),
        duration_s=D,
        objective_ms=run.objective_ms,
        requests=n,
        sent=int(o.sent.sum()),
        offered=round(offered, 3),
        achieved=round(achieved, 3),
        completed=int(o.success.sum()),
        failed=n_fail,
        rejected=n_rej,
        unfinished=n_unf,
        items_per_request=round(float(sizes.mean()), 4) if n else 1.0,
        latency_ms=latency,
        latency_ci_ms=latency_ci,
        queue=[(round(t, 3), int(d)) for t, d in run.samples[::stride]],
        queue_slope=round(slope, 3),
        queue_growing=bool(growing),
        batches=batch_counts,
        late=int(np.count_nonzero(lag > LATE_S)),
        max_lag_ms=round(float(lag.max()) * 1000 if lag.size else 0.0, 3),
        generator_behind=offered < ACHIEVED_SHARE * schedule.rate,
        sustainable=ok,
        reasons=reasons,
        raw=StepRaw(
            intended_s=run.intended - run.t0,
            sent_s=sender.sent_t - run.t0,
            latency_s=np.where(o.success, o.t_done - run.intended, np.nan),
        ),
    )
