"""What the runtime shows of itself: the live meter, :class:`RuntimeStats` and :class:`ScalingDecision`."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from tuner.stats import WindowedHistogram

if TYPE_CHECKING:
    from tuner.deployment import AutoscaleSettings

__all__ = ["Meter", "RuntimeStats", "ScalingDecision", "window_for"]

#: Window of the "recent" throughput and percentiles when there is no autoscaler to set one.
STATS_WINDOW_S = 5.0
#: Slots per window of the live latency histogram (the window's edge is this fine).
STATS_SLOTS = 5


def window_for(autoscale: AutoscaleSettings | None) -> float:
    """The window of the recent figures: two of the autoscaler's looks (at least 0.5 s), else 5 s."""
    return max(autoscale.interval_s * 2, 0.5) if autoscale is not None else STATS_WINDOW_S


@dataclass(frozen=True)
class ScalingDecision:
    """One autoscaler resize and why it happened."""

    at: float  # wall clock, time.time()
    old: int
    new: int
    reason: str

    def __str__(self) -> str:
        return f"{'up' if self.new > self.old else 'down'} {self.old}→{self.new}: {self.reason}"


@dataclass(frozen=True)
class RuntimeStats:
    """A snapshot of the runtime (``Runtime.stats()``)."""

    workers: int  # the engine's target worker count now
    live_workers: int  # workers loaded and serving
    backlog: int  # partitions in the engine, waiting or running
    queued: int  # items waiting in the dynamic batcher
    items_done: int  # items with an outcome (output or failure record)
    items_failed: int
    throughput: float  # items/s completed over the last `window_s`
    window_s: float
    # p50/p95/p99 item latency over the window, ms (caller's view: each partition's latency weighted
    # by its items, the definition of tuner.stats; from a live histogram, within its resolution)
    latency_ms: dict[str, float | None]
    failures: dict[str, int]  # failed items by cause
    retries: int  # partition attempts retried by the engine
    replaced: int  # workers replaced after a crash, timeout or memory kill
    scaling: tuple[ScalingDecision, ...] = ()
    pending: int = 0  # items in flight: submitted or mapped, not yet resolved
    max_pending: int = 0  # the bound on `pending`
    rejected: int = 0  # submissions refused with Overloaded
    hedges: int = 0  # hedge copies sent (hedged stragglers)
    hedges_won: int = 0  # ... that came back before the original
    duplicate_work: float = 0.0  # hedges / partitions completed
    #: dimensions drifting from the profile now (tuner.runtime.drift), each with its words
    drift: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scaling"] = [vars(x) for x in self.scaling]
        return d


#: default histogram bounds, seconds: 0.5 ms to 60 s, about ×1.6 apart (a runtime without a profile)
DEFAULT_BOUNDS: tuple[float, ...] = tuple(round(0.0005 * 1.6**i, 6) for i in range(26))


def profile_bounds(*figures_s: float | None) -> tuple[float, ...]:
    """Histogram bounds with resolution where the profile's figures are: the defaults, plus each
    figure (a p50, a p99) and ±10% and ±25% around it, so its region is not one wide bucket."""
    extra = {round(f * m, 6) for f in figures_s if f and f > 0 for m in (0.75, 0.9, 1.0, 1.1, 1.25)}
    return tuple(sorted(set(DEFAULT_BOUNDS) | extra))


class Buckets:
    """A cumulative histogram for Prometheus (``_bucket``, ``_sum``, ``_count``): counts by upper
    bound, observations weighted (a partition's latency counts once per item)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def add(self, value: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count <= le), ..., ("+Inf", count)]``."""
        out, running = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class Meter:
    """Completed partitions: counters, and a live histogram of item latency for windowed figures.

    The histogram (tuner.stats) is bounded by its time span and rounding, not by the rate: a window's
    percentiles cover the whole window whether 10 or 100 000 partitions completed in it.
    """

    def __init__(self, window_s: float) -> None:
        self._lock = threading.Lock()
        self.window_s = window_s
        self._hist = WindowedHistogram(window_s / STATS_SLOTS, window_s)
        self.items_done = 0
        self.items_failed = 0
        self.failures: dict[str, int] = {}
        self.t0 = time.perf_counter()
        # for /metrics (tuner.runtime.metrics) and the drift watch (tuner.runtime.drift)
        self.latency = Buckets(DEFAULT_BOUNDS)
        self.service = Buckets(DEFAULT_BOUNDS)
        self.partitions = 0
        self.min_items = 1  # partitions this large or larger give the drift watch their service time
        self._per_item: list[float] = []  # ... per item, since the watch last took them
        self._busy_s = 0.0  # seconds inside the model call, summed over partitions (workers' busy time)

    def record(
        self, t_done: float, latency_s: float, items: int, causes: Iterable[str] = (), service_s: float = 0.0
    ) -> None:
        """One partition completed at ``t_done``, ``latency_s`` after its first item arrived, after
        ``service_s`` inside the model call."""
        with self._lock:
            self._hist.record(t_done, latency_s, items)
            self.items_done += items
            self.partitions += 1
            self.latency.add(latency_s, items)
            if service_s > 0:
                self._busy_s += service_s
                self.service.add(service_s)
                if items >= self.min_items:
                    self._per_item.append(service_s / items)
            for cause in causes:
                self.failures[cause] = self.failures.get(cause, 0) + 1
                self.items_failed += 1

    def busy_s(self) -> float:
        """Seconds spent inside the model call by every completed partition (cumulative)."""
        with self._lock:
            return self._busy_s

    def take_service(self) -> list[float]:
        """The per-item service times recorded since the last call (the drift watch's window)."""
        with self._lock:
            taken, self._per_item = self._per_item, []
        return taken

    def histograms(self) -> tuple[Buckets, Buckets]:
        """Copies of (item latency, partition service time), read together."""
        with self._lock:
            return _copy(self.latency), _copy(self.service)

    def use_bounds(self, latency: tuple[float, ...], service: tuple[float, ...]) -> None:
        """New histogram bounds (before any partition completed: the start of the runtime)."""
        with self._lock:
            self.latency, self.service = Buckets(latency), Buckets(service)

    def totals(self) -> tuple[int, int, dict[str, int]]:
        """(items done, items failed, failed items by cause), read together."""
        with self._lock:
            return self.items_done, self.items_failed, dict(self.failures)

    def recent(self, now: float | None = None) -> tuple[float, dict[str, float | None]]:
        """(items/s, {p50, p95, p99} in ms) over the last ``window_s`` seconds."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            hist, covered = self._hist.window(now, self.window_s)
        span = max(min(covered, now - self.t0), 1e-3)
        qs = hist.percentiles((0.50, 0.95, 0.99))
        lat = {
            f"p{k}": (None if math.isnan(q) else q * 1000.0) for k, q in zip((50, 95, 99), qs, strict=True)
        }
        return hist.total / span, lat


def _copy(b: Buckets) -> Buckets:
    c = Buckets(b.bounds)
    c.counts, c.sum, c.count = list(b.counts), b.sum, b.count
    return c
