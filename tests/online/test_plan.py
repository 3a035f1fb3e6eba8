"""The USL fit recovers known σ and κ; the capacity plan's arithmetic on synthetic profiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from online.helpers import online, profile, usl
from tuner.errors import BadInput, TunerError
from tuner.plan import NotEnoughPoints, fit_usl, make_plan


def test_the_fit_recovers_known_sigma_and_kappa_from_noisy_windows() -> None:
    lam, sigma, kappa = 1000.0, 0.05, 0.002
    rng = np.random.default_rng(7)
    pts = [
        (n, usl(n, lam, sigma, kappa) * (1 + rng.normal(0, 0.01)))
        for n in (1, 2, 4, 8, 16, 32)
        for _ in range(3)
    ]
    fit = fit_usl(pts)
    lo, hi = fit.ci("sigma") or (math.nan, math.nan)
    assert lo <= sigma <= hi and abs(fit.sigma - sigma) < 0.005
    lo, hi = fit.ci("kappa") or (math.nan, math.nan)
    assert lo <= kappa <= hi and abs(fit.kappa - kappa) < 0.0003
    assert abs(fit.lam - lam) / lam < 0.02
    assert fit.peak_workers == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=0.05)
    assert fit.dof == 18 - 3 and len(fit.residuals) == 6
    assert "scaling peaks at 2" in fit.describe()  # N* ≈ 21.8, inside the measured 1..32


def test_exact_points_give_exact_parameters_and_no_uncertainty() -> None:
    fit = fit_usl([(n, usl(n, 500.0, 0.1, 0.01)) for n in (1, 2, 3)])
    assert fit.sigma == pytest.approx(0.1, abs=1e-6) and fit.kappa == pytest.approx(0.01, abs=1e-6)
    assert fit.dof == 0 and fit.ci("sigma") is None
    assert "no degrees of freedom" in fit.describe()


def test_the_fit_starts_from_any_worker_counts_not_only_one() -> None:
    fit = fit_usl([(n, usl(n, 800.0, 0.03, 0.004)) for n in (2, 3, 5, 8)])
    assert fit.sigma == pytest.approx(0.03, abs=1e-4) and fit.kappa == pytest.approx(0.004, abs=1e-5)


def test_superlinear_scaling_holds_sigma_and_kappa_at_zero_and_says_so() -> None:
    fit = fit_usl([(n, 500 * n**1.1) for n in (1, 2, 4, 8)])
    assert fit.sigma == 0 and fit.kappa == 0 and fit.fixed == ("sigma", "kappa")
    assert fit.peak_workers is None
    assert "held at 0" in fit.describe()


def test_fewer_than_three_worker_counts_is_said() -> None:
    with pytest.raises(NotEnoughPoints, match=r">= 3 worker counts \(measured: 1, 2\)"):
        fit_usl([(1, 100.0), (1, 101.0), (2, 190.0), (2, 195.0)])


# ------------------------------------------------------------------------------------------ the plan

#: contention 0.1, no coherency cost: X(1) = 300, X(2) = 545.45, X(3) = 750, X(4) = 923.08
SCALING = {n: [usl(n, 300.0, 0.1, 0.0)] * 3 for n in (1, 2, 4)}


def test_a_cpu_bound_plan_fills_the_cores_then_adds_hosts() -> None:
    p = profile(online(workers=4, max_rate=1000.0, scaling=SCALING), usable=4)
    plan = make_plan(p, 5000, headroom_pct=30)
    # 1000/s per host × 70% = 700/s planned: ceil(5000 / 700) = 8 hosts of 4 workers.
    assert (plan.hosts, plan.workers_per_host, plan.total_workers) == (8, 4, 32)
    assert plan.planned_per_host == pytest.approx(700.0)
    assert plan.per_host_source == "measured"
    text = "\n".join(plan.words)
    assert "8 hosts like this one × 4 workers = 32 workers" in text
    assert "capped at 4 by the 4 usable cores" in text
    assert any("hosts like this one: 4 usable cores, 16 GB" in a for a in plan.assumptions)
    assert any("rates add across hosts" in a for a in plan.assumptions)


def test_a_small_rate_needs_one_host_and_only_the_workers_the_fit_says() -> None:
    p = profile(online(workers=4, max_rate=1000.0, scaling=SCALING), usable=4)
    plan = make_plan(p, 500, headroom_pct=30)
    # 3 workers: 1000 × X(3)/X(4) = 812.5/s, × 70% = 568.75 >= 500; 2 workers give only 413.6.
    assert (plan.hosts, plan.workers_per_host) == (1, 3)
    assert plan.per_host_rate == pytest.approx(812.5) and plan.per_host_source == "fit"
    assert plan.configuration["max_pending_per_host"] == 48  # 64 scaled by 3/4 workers
    assert plan.warnings == []  # 3 is inside the measured 1..4


def test_past_the_peak_more_workers_do_not_help_so_the_plan_adds_hosts() -> None:
    # An io-bound model measured with 8 threads on a 2-core host (not CPU-bound: no core cap);
    # coherency makes throughput peak at √(0.95 / 0.01) ≈ 9.7 workers.
    scaling = {n: [usl(n, 200.0, 0.05, 0.01) * f for f in (0.99, 1.0, 1.01)] for n in (1, 2, 4, 8)}
    sec = online(backend="thread", workers=8, max_rate=900.0, scaling=scaling)
    p = profile(sec, usable=2, backend="thread", workers=8)
    plan = make_plan(p, 20_000, headroom_pct=0)
    assert plan.workers_per_host in (9, 10)  # the fit's best, below the 16 the extrapolation allows
    per_host = 900.0 * usl(plan.workers_per_host, 200, 0.05, 0.01) / usl(8, 200, 0.05, 0.01)
    assert plan.per_host_rate == pytest.approx(per_host, rel=0.02)
    assert plan.hosts == math.ceil(20_000 / plan.per_host_rate)
    assert "more workers per host would not help, so the plan adds hosts" in "\n".join(plan.words)
    assert plan.warnings and "past the measured range (at most 8)" in plan.warnings[0]


def test_without_three_worker_counts_the_plan_assumes_no_scaling_it_did_not_measure() -> None:
    sec = online(workers=2, max_rate=400.0, scaling={1: [210.0], 2: [400.0]})
    plan = make_plan(profile(sec, usable=8, workers=2), 1000, headroom_pct=20)
    assert plan.fit is None and "needs throughput at >= 3 worker counts" in plan.fit_note
    assert plan.workers_per_host == 2 and plan.hosts == math.ceil(1000 / 320)
    assert "the workers measured (no fit to go further)" in "\n".join(plan.words)


def test_memory_caps_the_workers_per_host() -> None:
    p = profile(online(workers=4, max_rate=1000.0, scaling=SCALING), usable=4, memory_gb=1.0, rss_mb=300.0)
    plan = make_plan(p, 5000, headroom_pct=0)
    assert plan.workers_per_host == 2  # 0.8 × 1000 MB / 300 MB = 2 workers fit in memory
    assert "memory (1 GB × 80% / 300 MB per worker)" in "\n".join(plan.words)


def test_another_objective_reads_the_measured_curve() -> None:
    curve = [
        (200.0, 5.0, True),
        (400.0, 12.0, True),
        (800.0, 30.0, True),
        (1000.0, 40.0, True),
        (1200.0, 90.0, False),
    ]
    p = profile(online(workers=4, max_rate=1000.0, curve=curve), usable=4)
    plan = make_plan(p, 100, p99_ms=20, headroom_pct=0)
    assert plan.per_host_rate == 400.0  # the highest measured rate with p99 <= 20 ms
    assert "the measured curve's highest rate with p99 <= 20 ms" in "\n".join(plan.words)
    with pytest.raises(
        TunerError, match=r"no measured rate keeps p99 <= 2 ms .* lowest p99 measured was 5 ms"
    ):
        make_plan(p, 100, p99_ms=2)


def test_a_profile_without_online_section_is_refused_in_one_line() -> None:
    with pytest.raises(BadInput, match="has no online: section — run tuner bench --online --p99-ms MS"):
        make_plan(profile(None), 100)
    with pytest.raises(BadInput, match="--headroom"):
        make_plan(profile(online()), 100, headroom_pct=100)


def test_a_price_per_host_hour_gives_the_plans_cost_and_the_cost_per_million_requests() -> None:
    p = profile(online(workers=4, max_rate=1000.0, scaling=SCALING), usable=4)
    plan = make_plan(p, 5000, headroom_pct=30, cost_per_hour=0.5)
    # 8 hosts (as above) × 0.5 = 4.0 per hour; 4.0 / (5000/s × 3600 s) × 10⁶ = 0.2222 per million.
    assert plan.cost_per_hour == pytest.approx(4.0)
    assert plan.cost_per_million == pytest.approx(4.0 / (5000 * 3600) * 1e6)
    d = plan.to_dict()
    assert d["cost_per_hour"] == pytest.approx(4.0) and d["cost_per_host_hour"] == 0.5
    cost = plan.words[-1]
    assert cost.startswith("  Cost: 8 hosts × 0.5 per hour = 4 per hour; 0.2222 per million requests")
    assert "each host planned at 70% of its max rate, so the 30% headroom is in the price" in cost
    assert make_plan(p, 5000).cost_per_hour is None and "Cost" not in "\n".join(make_plan(p, 5000).words)
    with pytest.raises(BadInput, match="--cost-per-hour"):
        make_plan(p, 5000, cost_per_hour=float("nan"))


def test_hosts_with_a_given_worker_count_reads_the_plans_options() -> None:
    p = profile(online(workers=4, max_rate=1000.0, scaling=SCALING), usable=4)
    plan = make_plan(p, 5000, headroom_pct=30)
    assert plan.hosts_with(4) == plan.hosts == 8
    # 2 workers: 1000 × X(2)/X(4) = 590.9/s × 70% = 413.6/s planned: ceil(5000 / 413.6) = 13 hosts.
    assert plan.hosts_with(2) == 13
    assert plan.hosts_with(9) is None  # past the 4 cores: not an option
