"""One truth for numbers: the percentile definition, its live histogram, and every user of them agreeing."""

from __future__ import annotations

import csv
import io
import math
import random

import numpy as np
import pytest

from tuner import stats
from tuner.bench.measure import latency_figures, service_figures
from tuner.bench.report import csv_text, markdown_summary
from tuner.bench.types import TrialConfig, TrialResult


def _samples(n: int = 3000, seed: int = 7) -> tuple[list[float], list[int]]:
    """Partition latencies (s, a long tail) and their item counts, like a trial's."""
    rng = random.Random(seed)
    lat = [rng.lognormvariate(math.log(0.004), 0.6) for _ in range(n)]
    items = [rng.choice((16, 32, 64, 64, 64)) for _ in range(n)]
    return lat, items


@pytest.mark.timeout(10)
def test_weighted_percentiles_weight_each_partition_by_its_items() -> None:
    # One 90-item partition at 1 ms, one 10-item partition at 100 ms: p50 and p90 are 1 ms,
    # p95 and p99 are 100 ms (an unweighted median of the two partitions would say 50 ms).
    assert stats.percentiles([0.001, 0.100], (0.5, 0.9, 0.95, 0.99), [90, 10]) == [0.001, 0.001, 0.1, 0.1]
    assert math.isnan(stats.percentiles([], (0.5,))[0])
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        stats.percentiles([1.0], (99,))


@pytest.mark.timeout(10)
def test_unweighted_is_nearest_rank_and_numpys_inverted_cdf() -> None:
    x = np.random.default_rng(1).exponential(size=1001)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        want = np.quantile(x, q, method="inverted_cdf")
        assert stats.percentile(x, q) == want
        assert stats.percentile(x.tolist(), q, [1] * x.size) == want
        nearest_rank = sorted(x)[max(1, math.ceil(q * x.size)) - 1]
        assert stats.percentile(x, q) == nearest_rank
    assert stats.median([1.0, 2.0, 3.0, 4.0]) == 2.0  # an observed value: the lower median


@pytest.mark.timeout(10)
def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible() -> None:
    x = np.random.default_rng(2).normal(10.0, 1.0, size=2000)
    w = np.ones_like(x)
    (ci,) = stats.bootstrap_ci(x, w, (0.5,))
    median = stats.percentile(x, 0.5, w)
    assert ci[0] <= median <= ci[1]
    assert ci[1] - ci[0] < 0.3  # 2000 samples: the median is known to ~±0.07
    assert stats.bootstrap_ci(x, w, (0.5,)) == [ci]  # seeded
    (wide,) = stats.bootstrap_ci(x[:20], w[:20], (0.5,))
    assert wide[1] - wide[0] > ci[1] - ci[0]


@pytest.mark.timeout(10)
def test_stability_needs_the_last_windows_within_tolerance() -> None:
    assert stats.is_stable([100, 50, 100, 101, 99], 3, 0.05)
    assert not stats.is_stable([100, 101, 120], 3, 0.05)
    assert not stats.is_stable([100, 100], 3, 0.05)  # too few windows
    assert not stats.is_stable([0, 0, 0], 3, 0.05)  # nothing completed is not "stable"
    assert stats.is_stable([100, 109, 104], 3, 0.05)  # mean 104.3: all within 5%


@pytest.mark.timeout(10)
def test_histogram_is_the_same_definition_over_rounded_values() -> None:
    lat, items = _samples()
    h = stats.Histogram()
    for v, w in zip(lat, items, strict=True):
        h.add(v, w)
    qs = (0.5, 0.9, 0.95, 0.99)
    rounded = [stats.round_sig(v) for v in lat]
    # Exactly the one definition applied to the rounded samples ...
    assert h.percentiles(qs) == stats.percentiles(rounded, qs, items)
    # ... so within the stated resolution of the exact figure on the raw samples.
    for got, exact in zip(h.percentiles(qs), stats.percentiles(lat, qs, items), strict=True):
        assert abs(got - exact) <= stats.HISTOGRAM_RESOLUTION * exact
    # Bounded: distinct rounded values, not samples.
    assert len(h.counts) < 1000 < len(lat)


@pytest.mark.timeout(10)
def test_windowed_histogram_forgets_what_left_the_window() -> None:
    w = stats.WindowedHistogram(slot_s=1.0, span_s=5.0)
    for t in range(100):
        w.record(float(t), 0.001 if t < 90 else 0.1, 1)
    h, covered = w.window(99.5, 5.0)
    assert h.total == 6 and 5.0 <= covered <= 6.0  # slots 94..99
    assert h.percentiles((0.5,)) == [0.1]  # the early fast samples are gone
    assert len(w._slots) <= w.keep


@pytest.mark.timeout(30)
def test_bench_runtime_and_report_agree_on_the_same_samples() -> None:
    """Same partitions through the benchmark's figures, the runtime's live meter and the reports."""
    from tuner.runtime import _Meter

    lat, items = _samples()
    bench, _ = latency_figures(lat, items, ci=False)

    meter = _Meter(window_s=60.0)
    t0 = meter.t0
    for i, (v, n) in enumerate(zip(lat, items, strict=True)):
        meter.record(t0 + 1.0 + i * 1e-3, v, n)
    _, live = meter.recent(t0 + 10.0)
    for key in ("p50", "p95", "p99"):
        assert live[key] is not None
        assert live[key] == pytest.approx(bench[key], rel=stats.HISTOGRAM_RESOLUTION), key

    # The reports print the trial's figures as measured, not a figure of their own.
    result = TrialResult(
        config=TrialConfig(),
        throughput=1000.0,
        throughput_ci=(990.0, 1010.0),
        latency_ms=bench,
        latency_ci_ms={},
        service_ms=service_figures(lat),
        cpu_share=0.5,
        peak_rss_mb={"total": 100.0},
        stable=True,
        windows=[1000.0] * 3,
        warmup_s=0.5,
        cold_start_s=0.1,
        measured_s=3.0,
        items=sum(items),
    )
    row = next(csv.DictReader(io.StringIO(csv_text([result]))))
    assert float(row["p50_ms"]) == bench["p50"] and float(row["p99_ms"]) == bench["p99"]
    md = markdown_summary([result], None, title="t", host="h")
    from tuner import fmt

    assert f"{fmt.ms(bench['p50'])} | {fmt.ms(bench['p99'])}" in md

    # Service time uses the same definition, unweighted (it used numpy's linear interpolation).
    svc = service_figures(lat)
    assert svc["p99"] == round(stats.percentile(lat, 0.99) * 1000, 4)
    assert svc["p99"] / 1000 in {round(v, 7) for v in lat} or any(
        abs(svc["p99"] / 1000 - v) < 1e-7 for v in lat
    ), "an observed value, not an interpolation"
