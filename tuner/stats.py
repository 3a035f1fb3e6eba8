"""One statistics module: every percentile and confidence interval in tuner comes from here.

**The percentile definition** (one, everywhere): the *weighted inverted CDF* — the q-th percentile is
the smallest observed value whose cumulative weight reaches ``q`` of the total weight. With equal
weights it is the classic nearest-rank percentile and numpy's ``method="inverted_cdf"``; it always
returns an observed value (never an interpolation between two), so a p99 is a latency some request
really had. Item latency weights each partition by its item count (every item of a partition shares
its partition's latency); service times, window throughputs and the like are unweighted.

Who uses it: the benchmark's trial figures and their bootstrap CIs (``tuner.bench.measure``), the
profile's evidence (written from those figures), ``Runtime.stats()`` and the runtime's autoscaler,
and the reports (which print the trial figures as measured).

**Two forms of the same definition**:

* :func:`percentiles` over raw samples — exact; for final figures and confidence intervals.
* :class:`Histogram` / :class:`WindowedHistogram` — live figures over a stream (Locust's lesson:
  a bounded, rounded histogram instead of sorting every sample at every refresh). Values are rounded
  to :data:`SIGNIFICANT_DIGITS` significant digits (relative error <= :data:`HISTOGRAM_RESOLUTION`),
  and the percentile of the histogram is the *same* weighted inverted CDF over the rounded values:
  it equals :func:`percentiles` of the rounded samples exactly, and the exact percentile of the raw
  samples within the resolution. Memory is bounded by the number of distinct rounded values, not by
  the number of samples, so a runtime serving for a month costs what it cost after a minute.

Why hand-written: numpy's ``quantile`` has no weights (before numpy 2.0, and then only for the
inverted CDF), ``statistics.quantiles`` interpolates, and HdrHistogram's Python port is unmaintained
and a compiled dependency; the definition is ten lines. Importing this module costs only the standard
library: numpy is imported inside :func:`bootstrap_ci` only, so ``import tuner.runtime`` stays light.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "HISTOGRAM_RESOLUTION",
    "SIGNIFICANT_DIGITS",
    "Histogram",
    "WindowedHistogram",
    "bootstrap_ci",
    "is_stable",
    "median",
    "percentile",
    "percentiles",
    "ratio_ci",
    "round_sig",
]

#: Bootstrap resamples for confidence intervals (seeded: a trial's CI is reproducible).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 12345
#: Significant digits a live histogram keeps (3: 1.23 ms, 12.3 ms, 123 ms).
SIGNIFICANT_DIGITS = 3
#: Worst relative error of a histogram percentile against the exact one (half a step at 1.00).
HISTOGRAM_RESOLUTION = 0.5 * 10.0 ** (1 - SIGNIFICANT_DIGITS)
# A cumulative weight that misses q·total by float rounding alone still reaches it.
_EPS = 1e-9


def _floats(values: Any) -> list[float]:
    tolist = getattr(values, "tolist", None)  # a numpy array: one C call, not n
    seq = tolist() if tolist is not None else values
    return [float(v) for v in seq]


def _check_qs(qs: Sequence[float]) -> None:
    for q in qs:
        if not 0.0 <= q <= 1.0 or math.isnan(q):
            raise ValueError(f"percentile q must be in [0, 1] (got {q})")


def _inverted_cdf(sorted_values: Sequence[float], cum: Sequence[float], qs: Sequence[float]) -> list[float]:
    """The definition itself, over values sorted ascending and their cumulative weights."""
    total = cum[-1]
    last = len(sorted_values) - 1
    return [sorted_values[min(bisect_left(cum, q * total - _EPS * total), last)] for q in qs]


def percentiles(values: Any, qs: Sequence[float], weights: Any = None) -> list[float]:
    """The weighted inverted-CDF percentiles ``qs`` (each in [0, 1]) of ``values``; nan when empty.

    ``weights`` (same length, >= 0): how many observations each value stands for (items of a
    partition); None weighs every value 1.
    """
    _check_qs(qs)
    v = _floats(values)
    if not v:
        return [math.nan for _ in qs]
    order = sorted(range(len(v)), key=v.__getitem__)
    if weights is None:
        cum: list[float] = [float(i + 1) for i in range(len(v))]
    else:
        w = _floats(weights)
        if len(w) != len(v):
            raise ValueError(f"{len(v)} values but {len(w)} weights")
        cum = list(accumulate(w[i] for i in order))
        if cum[-1] <= 0:
            return [math.nan for _ in qs]
    return _inverted_cdf([v[i] for i in order], cum, qs)


def percentile(values: Any, q: float, weights: Any = None) -> float:
    """One percentile (see :func:`percentiles`)."""
    return percentiles(values, (q,), weights)[0]


def median(values: Any, weights: Any = None) -> float:
    """The 50th percentile by the one definition (the lower median of an even count)."""
    return percentile(values, 0.5, weights)


def bootstrap_ci(
    values: Any,
    weights: Any,
    qs: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> list[tuple[float, float]]:
    """Percentile-bootstrap CIs of the percentiles ``qs`` (q=0.5 of window throughputs = median).

    Resamples whole observations (partitions, windows) with replacement and takes each resample's
    percentile by the one definition. Vectorised (numpy, imported here only): the resampled
    multiplicities are counted per row and cumulated over the sorted values, so no per-row sort.
    """
    import numpy as np

    _check_qs(qs)
    v = np.asarray(values, dtype=float)
    n = v.size
    if n == 0:
        return [(math.nan, math.nan) for _ in qs]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    # Keep the (resamples × n) matrix to a few million cells: big trials have tens of thousands
    # of partitions, and 1000 resamples of those would cost more than the trial's CI is worth.
    b = max(200, min(resamples, 4_000_000 // max(1, n)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(b, n))
    counts = np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n)
    cum = np.cumsum(counts * w, axis=1)
    total = cum[:, -1:]
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = []
    for q in qs:
        # Same rule as _inverted_cdf: the first sorted value whose cumulative weight reaches q.
        pos = (cum >= q * total - _EPS * total).argmax(axis=1)
        stats = v[pos]
        # The interval's ends are themselves percentiles of the bootstrap distribution: the same
        # definition again (an interval end is a statistic some resample really gave).
        lo, hi = percentiles(stats, (lo_q, hi_q))
        out.append((lo, hi))
    return out


def ratio_ci(
    a: Any, b: Any, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(a) / median(b), ``a`` and ``b`` resampled independently
    (two trials' window throughputs: how much faster one deployment is than another)."""
    import numpy as np

    va, vb = np.asarray(_floats(a), dtype=float), np.asarray(_floats(b), dtype=float)
    if va.size == 0 or vb.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)

    def medians(v: Any) -> Any:
        rows = np.sort(v[rng.integers(0, v.size, size=(resamples, v.size))], axis=1)
        return rows[:, math.ceil(0.5 * v.size) - 1]  # the lower median: the inverted CDF at 0.5

    mb = medians(vb)
    ratios = medians(va) / np.where(mb > 0, mb, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return (math.nan, math.nan)
    lo, hi = percentiles(ratios, ((1 - level) / 2, 1 - (1 - level) / 2))
    return (lo, hi)


def is_stable(windows: Sequence[float], n: int, tolerance: float) -> bool:
    """True when the last ``n`` window throughputs are all within ±tolerance of their mean."""
    if n < 1 or len(windows) < n:
        return False
    last = windows[-n:]
    mean = sum(last) / n
    if mean <= 0:
        return False
    return all(abs(w - mean) <= tolerance * mean for w in last)


# ------------------------------------------------------------------------------- live histograms


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0 and negatives become 0.0; latencies are >= 0)."""
    if not x > 0.0 or math.isinf(x):
        return 0.0 if not x > 0.0 else x
    return round(x, digits - 1 - math.floor(math.log10(x)))


class Histogram:
    """Weights of values rounded to :data:`SIGNIFICANT_DIGITS` significant digits (not thread-safe)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[float, float] = {}
        self.total = 0.0

    def add(self, value: float, weight: float = 1.0) -> None:
        """Count ``value`` (rounded) ``weight`` times."""
        key = round_sig(value)
        self.counts[key] = self.counts.get(key, 0.0) + weight
        self.total += weight

    def merge(self, other: Histogram) -> None:
        """Add every count of ``other`` into this one."""
        for key, weight in other.counts.items():
            self.counts[key] = self.counts.get(key, 0.0) + weight
        self.total += other.total

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """The weighted inverted-CDF percentiles of the rounded values; nan when empty."""
        _check_qs(qs)
        if not self.counts or self.total <= 0:
            return [math.nan for _ in qs]
        keys = sorted(self.counts)
        return _inverted_cdf(keys, list(accumulate(self.counts[k] for k in keys)), qs)


class WindowedHistogram:
    """A live view of a stream: per-slot histograms over a bounded span of recent time.

    ``record(t, value, weight)`` files a sample under its time slot; ``window(now, span_s)`` gives the
    merged histogram of the slots that overlap ``[now - span_s, now]`` and the time they cover. The
    oldest slots fall off, so memory is ``slots × distinct rounded values`` whatever the rate.
    Thread-safe for one writer and any readers under the caller's lock (the runtime holds one).
    """

    def __init__(self, slot_s: float, span_s: float) -> None:
        if not (slot_s > 0 and math.isfinite(slot_s)) or not (span_s >= slot_s and math.isfinite(span_s)):
            raise ValueError(f"need 0 < slot_s <= span_s, finite (got {slot_s}, {span_s})")
        self.slot_s = slot_s
        self.keep = math.ceil(span_s / slot_s) + 1
        self._slots: deque[tuple[int, Histogram]] = deque()

    def record(self, t: float, value: float, weight: float = 1.0) -> None:
        """Add one sample observed at time ``t`` (seconds, any monotonic clock)."""
        k = math.floor(t / self.slot_s)
        slots = self._slots
        if not slots or slots[-1][0] < k:
            slots.append((k, Histogram()))
            while len(slots) > self.keep or (slots and slots[0][0] <= k - self.keep):
                slots.popleft()
            slots[-1][1].add(value, weight)
            return
        for key, h in reversed(slots):  # a late sample (rare): its own slot if still kept
            if key <= k:
                if key == k:
                    h.add(value, weight)
                return

    def window(self, now: float, span_s: float) -> tuple[Histogram, float]:
        """(merged histogram, seconds it covers) over the slots overlapping the last ``span_s``."""
        since = math.floor((now - span_s) / self.slot_s)
        merged = Histogram()
        first: int | None = None
        for key, h in self._slots:
            if key >= since:
                merged.merge(h)
                first = key if first is None else first
        covered = now - (first * self.slot_s if first is not None else now)
        return merged, max(covered, 0.0)
