"""Unit tests of the benchmark's arithmetic and search: no processes, no engine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tuner.bench.measure import check_feasible, timeout_for
from tuner.bench.profiles import build_profile
from tuner.bench.recommend import pareto_front, recommend
from tuner.bench.request import SweepRequest
from tuner.bench.search import AdaptiveStrategy, GridStrategy, Space, hardware_guess, make_strategy
from tuner.bench.types import Objective, TrialConfig, TrialResult
from tuner.errors import ConfigError


def result(
    config: TrialConfig,
    throughput: float,
    p99: float = 10.0,
    *,
    stable: bool = True,
    faults_seen: dict[str, int] | None = None,
) -> TrialResult:
    r = TrialResult(
        config=config,
        throughput=throughput,
        throughput_ci=(throughput * 0.99, throughput * 1.01),
        latency_ms={"p50": p99 / 2, "p90": p99 * 0.8, "p95": p99 * 0.9, "p99": p99},
        latency_ci_ms={"p99": (p99 * 0.9, p99 * 1.1)},
        service_ms={"p50": 1.0, "p99": 2.0, "p999": 3.0, "max": 4.0},
        cpu_share=0.9,
        peak_rss_mb={"per_worker": 50.0, "total": 50.0 * config.workers},
        stable=stable,
        windows=[throughput] * 3,
        warmup_s=0.5,
        cold_start_s=0.3,
        measured_s=3.0,
        items=int(throughput * 3),
        faults_seen=faults_seen or {},
    )
    return check_feasible(r, Objective())


@pytest.mark.timeout(10)
def test_timeout_is_ten_times_the_tail_with_a_floor() -> None:
    assert timeout_for(50.0) == 0.5
    assert timeout_for(1.0) == 0.1  # floor
    assert timeout_for(None) > 0


@pytest.mark.timeout(10)
def test_pareto_front_keeps_only_undominated_trials() -> None:
    a = result(TrialConfig("process", 2, 1, 256), 1000, p99=40)
    b = result(TrialConfig("process", 2, 1, 64), 800, p99=10)
    c = result(TrialConfig("process", 1, 1, 64), 500, p99=20)  # dominated by b
    d = result(TrialConfig("process", 2, 1, 16), 300, p99=5)
    assert pareto_front([a, b, c, d]) == [a, b, d]


@pytest.mark.timeout(10)
def test_space_respects_usable_cores_unless_oversubscribed() -> None:
    s = Space(("process",), (1, 2), (1, 2), (64,), max_parallel=2)
    assert {(c.workers, c.threads_per_worker) for c in s.configs()} == {(1, 1), (1, 2), (2, 1)}
    over = Space(("process",), (1, 2), (1, 2), (64,), oversubscribe=True, max_parallel=2)
    assert len(over.configs()) == 4
    with pytest.raises(ConfigError):
        Space(("gpu",), (1,), (1,), (64,))


def surface(c: TrialConfig) -> float:
    """A synthetic throughput surface shaped like mlp on 4 cores: best at process × 4 × 1 × 256."""
    cores_used = c.workers * c.threads_per_worker
    eff = 1.0 if c.threads_per_worker == 1 else 0.7
    per_call = 1.0 / (1.0 + 64 / c.partition_size) * (1.0 - c.partition_size / 4096)  # overhead vs cache
    backend = 1.0 if c.backend == "process" else 0.4  # the GIL
    return 1000.0 * min(cores_used, 4) * eff * per_call * backend


@pytest.mark.timeout(10)
def test_adaptive_finds_the_grid_optimum_with_fewer_trials() -> None:
    space = Space(
        ("process", "thread"), (1, 2, 4), (1, 2, 4), (16, 32, 64, 128, 256, 512, 1024), max_parallel=4
    )
    grid = GridStrategy(space)
    grid_results = []
    while (c := grid.next()) is not None:
        grid_results.append(result(c, surface(c)))
    grid_best = max(grid_results, key=lambda r: r.throughput)

    adaptive = AdaptiveStrategy(space, Objective(), TrialConfig("process", 4, 1, 64))
    seen = []
    while (c := adaptive.next()) is not None:
        r = result(c, surface(c))
        seen.append(r)
        adaptive.report(r)
    best = max(seen, key=lambda r: r.throughput)
    assert best.config == grid_best.config
    assert len(seen) <= len(grid_results) / 3, (len(seen), len(grid_results))
    assert len({r.config for r in seen}) == len(seen)  # never measures a config twice


@pytest.mark.timeout(10)
def test_adaptive_respects_max_trials_and_skips_known_results() -> None:
    space = Space(("process",), (1, 2), (1,), (16, 32, 64, 128), max_parallel=2)
    start = hardware_guess(space, None)
    known = {start.key(): result(start, surface(start))}
    s = make_strategy("adaptive", space, None, Objective(), max_trials=2, known=known)
    asked = []
    while (c := s.next()) is not None:
        asked.append(c)
        s.report(result(c, surface(c)))
    assert len(asked) <= 2
    assert start not in asked


@pytest.mark.timeout(10)
def test_recommend_picks_best_feasible_and_keeps_infeasible() -> None:
    obj = Objective(p99_budget_ms=20)
    fast_slow_tail = result(TrialConfig("process", 2, 1, 512), 2000, p99=80)
    check_feasible(fast_slow_tail, obj)
    good = result(TrialConfig("process", 2, 1, 64), 1500, p99=8)
    one = result(TrialConfig("process", 1, 1, 64), 800, p99=8)
    rec = recommend([fast_slow_tail, good, one], obj, None)
    assert not fast_slow_tail.feasible and fast_slow_tail in rec.infeasible
    assert rec.best is good
    d = rec.deployment
    assert d is not None and d.autoscale is not None
    assert (
        d.autoscale.min_workers == 1 and d.autoscale.max_workers == 2
    )  # 1 worker reaches >= 50% of the best
    assert d.retries == 2 and (d.backoff_base_s, d.backoff_cap_s) == (0.05, 2.0)  # no faults seen
    assert d.timeout_s == 0.1  # 10 × 3 ms p99.9 is below the floor
    assert rec.words[0].startswith("Recommended: 2 worker processes × 1 BLAS thread, partitions of 64")


@pytest.mark.timeout(10)
def test_more_faults_mean_more_retries() -> None:
    cfg = TrialConfig("process", 2, 1, 64)
    calm = recommend([result(cfg, 1000)], Objective(), None)
    stormy = recommend([result(cfg, 1000, faults_seen={"crash": 20, "timeout": 5})], Objective(), None)
    assert stormy.deployment is not None and calm.deployment is not None
    assert stormy.deployment.retries > calm.deployment.retries
    assert stormy.deployment.backoff_base_s >= calm.deployment.backoff_base_s


@pytest.mark.timeout(20)
def test_build_profile_round_trips(tmp_path) -> None:
    from tuner.hardware import probe
    from tuner.profile import load_profile, save_profile

    cfg = TrialConfig("process", 2, 1, 64)
    rec = recommend([result(cfg, 1000), result(TrialConfig("process", 1, 1, 64), 600)], Objective(), None)
    profile = build_profile(
        rec, name="unit", request=SweepRequest(model="builtin:mlp"), host=probe(), info=None
    )
    path = save_profile(profile, tmp_path / "unit.yaml")
    back = load_profile(path)
    assert rec.deployment is not None
    assert back.recommended.workers == 2 and back.recommended.timeout_s == rec.deployment.timeout_s
    assert back.deployment() == profile.deployment()  # the profile maps to one deployment and back
    assert back.autoscale.min_workers <= 2 <= back.autoscale.max_workers
    assert back.evidence.throughput == 1000


@pytest.mark.timeout(10)
def test_p99_objective_prefers_the_lowest_tail() -> None:
    fast = result(TrialConfig("process", 2, 1, 1024), 2000, p99=90)
    snappy = result(TrialConfig("process", 2, 1, 16), 900, p99=4)
    rec = recommend([fast, snappy], Objective(goal="p99"), None)
    assert rec.best is snappy
    assert rec.runner_ups == [fast]


@pytest.mark.timeout(10)
def test_merging_a_confirmation_trial_uses_both_trials_windows() -> None:
    from tuner.bench.session import merge_trials

    cfg = TrialConfig("process", 2, 1, 64)
    lucky = result(cfg, 1100)
    again = result(cfg, 1000)
    merged = merge_trials(lucky, again, Objective())
    assert merged.config == cfg and 1000 <= merged.throughput <= 1100
    assert len(merged.windows) == 6 and merged.items == lucky.items + again.items


@pytest.mark.timeout(10)
def test_max_pending_is_throughput_times_the_budget_and_never_below_the_measured_depth() -> None:
    from tuner.bench.recommend import max_pending_for

    # 50k items/s × 100 ms = 5000 items (above 4 × 2 workers × 64 = 512).
    n, why = max_pending_for(50_000.0, 64, 2, 100.0)
    assert n == 5000 and "p99 budget of 100 ms" in why and "Little's law" in why
    # No objective: one second of work.
    n, why = max_pending_for(50_000.0, 64, 2, None)
    assert n == 50_000 and "1 s of work" in why
    # A tight budget would starve the pool below what was measured: the closed loop's depth wins.
    n, why = max_pending_for(1_000.0, 64, 2, 10.0)
    assert n == 512 and "is only 10" in why


@pytest.mark.timeout(20)
def test_profile_records_max_pending_and_why(tmp_path) -> None:
    from tuner.hardware import probe
    from tuner.profile import load_profile, save_profile

    cfg = TrialConfig("process", 2, 1, 64)
    obj = Objective(p99_budget_ms=50.0)
    rec = recommend([result(cfg, 40_000.0)], obj, None)
    assert rec.deployment is not None
    assert rec.deployment.max_pending == 2000 and "max_pending 2000" in rec.pending_reasoning
    assert rec.pending_reasoning in rec.autoscale_reasoning  # `tuner bench` prints it with the bounds
    profile = build_profile(
        rec, name="unit", request=SweepRequest(model="builtin:mlp", objective=obj), host=probe(), info=None
    )
    back = load_profile(save_profile(profile, tmp_path / "unit.yaml"))
    assert back.recommended.max_pending == 2000 and back.recommended.overload == "block"
    assert "max_pending 2000: 40.0k items/s × the p99 budget of 50 ms" in back.autoscale.reasoning


def test_untried_names_the_values_no_trial_reached() -> None:
    space = Space(backends=("process", "thread"), workers=(1, 2), threads=(1,), partition_sizes=(16, 64, 256))
    done = [result(TrialConfig("process", 1, 1, 16), 100.0), result(TrialConfig("process", 2, 1, 64), 150.0)]
    assert space.untried(done) == ["backend thread", "partitions 256"]
    # the default deployment's trials are not the space's: they do not count as covering it
    anchor = result(TrialConfig("thread", 1, None, 256), 90.0)
    anchor.role = "default"
    assert space.untried([*done, anchor]) == ["backend thread", "partitions 256"]


def test_the_adaptive_search_starts_at_the_knee_of_the_partition_size() -> None:
    from tuner.bench.search import knee_partition

    # a fast model needs big partitions to hide the engine's overhead, a slow one small ones
    fast, slow = knee_partition(1e-5), knee_partition(2e-3)
    assert fast is not None and slow is not None and fast > 100 > slow
    assert knee_partition(None) is None
    space = Space(backends=("process",), workers=(1, 2), threads=(1,), partition_sizes=(16, 64, 256, 1024),
                  start_partition=fast)  # fmt: skip
    assert hardware_guess(space, None).partition_size == 256
    assert hardware_guess(replace(space, start_partition=slow), None).partition_size == 16
