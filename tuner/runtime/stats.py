"""What the runtime shows of itself: the live meter, :class:`RuntimeStats` and :class:`ScalingDecision`."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scaling"] = [vars(x) for x in self.scaling]
        return d


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

    def record(self, t_done: float, latency_s: float, items: int, causes: Iterable[str] = ()) -> None:
        """One partition completed at ``t_done``, ``latency_s`` after its first item arrived."""
        with self._lock:
            self._hist.record(t_done, latency_s, items)
            self.items_done += items
            for cause in causes:
                self.failures[cause] = self.failures.get(cause, 0) + 1
                self.items_failed += 1

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
