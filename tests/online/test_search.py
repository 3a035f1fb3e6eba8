"""The rate search on synthetic capacities (no runtime): it brackets, bisects, keeps to its budget."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tuner.bench.online.search import CandidateResult, SearchSettings, confident_bounds, search_max_rate
from tuner.bench.online.step import StepResult
from tuner.bench.online.sweep import summarize
from tuner.bench.request import OnlineRequest
from tuner.bench.types import TrialConfig


def fake_step(rate: float, capacity: float, *, p99_ci: tuple[float, float] = (10.0, 20.0)) -> StepResult:
    ok = rate <= capacity
    return StepResult(
        rate=rate, duration_s=1.0, objective_ms=50.0, requests=int(rate), sent=int(rate), offered=rate,
        achieved=rate if ok else capacity, completed=int(min(rate, capacity)), failed=0, rejected=0,
        unfinished=0, items_per_request=1.0, latency_ms={"p50": 4.0 if ok else 30.0, "p99": 15.0 if ok else 80.0},
        latency_ci_ms={"p99": p99_ci if ok else (70.0, 90.0)}, queue=[(0.5, 4), (0.9, 4)], queue_slope=0.0,
        queue_growing=not ok, batches={}, late=0, max_lag_ms=0.0, generator_behind=False, sustainable=ok,
        reasons=[] if ok else ["queue growing (+1 items/s)"],
    )  # fmt: skip


@pytest.mark.parametrize(("capacity", "start"), [(1234.0, 100.0), (1234.0, 5000.0), (80.0, 2000.0)])
def test_finds_the_capacity_within_the_resolution_from_below_or_above(capacity: float, start: float) -> None:
    found = search_max_rate(lambda r: fake_step(r, capacity), start, SearchSettings(resolution=0.05))
    lo, hi = found.bracket
    assert lo <= capacity < hi
    assert hi / lo - 1 <= 0.05
    assert found.max_rate == lo
    assert found.stop_reason == "resolved within 5%"
    # Geometric then bisection (and one re-check, one confirmation): few steps, not a scan.
    assert len(found.steps) <= 4 + math.ceil(math.log2(abs(math.log2(capacity / start)) + 1)) + 8


def test_after_a_step_the_generator_could_not_keep_it_looks_under_what_was_sent() -> None:
    """A fast model's first step at a share of its closed-loop rate is beyond one Python sender: the
    search goes under what the sender did send, not halving from the schedule it missed."""
    sender_max, capacity = 30_000.0, 20_000.0
    rates: list[float] = []

    def step(rate: float) -> StepResult:
        rates.append(rate)
        if rate <= sender_max:
            return fake_step(rate, capacity)
        r = fake_step(rate, 0.0)
        return dataclasses.replace(
            r, offered=sender_max, generator_behind=True,
            reasons=[f"generator behind: sent {sender_max / rate:.1%} of the schedule on time"],
        )  # fmt: skip

    found = search_max_rate(step, 1_000_000.0, SearchSettings(factor=2.0, resolution=0.05))
    assert rates[1] <= sender_max / 2.0, rates  # not 500k, 250k, 125k ... from the missed schedule
    assert sum(1 for r in rates if r > sender_max) == 1
    lo, hi = found.bracket
    assert lo <= capacity < hi


def test_gives_up_below_the_minimum_rate() -> None:
    found = search_max_rate(lambda r: fake_step(r, 0.5), 10.0, SearchSettings(min_rate=1.0))
    assert found.best is None and found.max_rate == 0.0
    assert found.stop_reason.startswith("no sustainable rate")


def test_keeps_to_its_budget_on_the_clock_it_is_given() -> None:
    now = [0.0]

    def step(rate: float) -> StepResult:
        now[0] += 2.0  # every step costs 2 s
        return fake_step(rate, 1e9)  # never fails: only the budget stops it

    found = search_max_rate(step, 1.0, deadline=9.0, clock=lambda: now[0])
    assert found.stop_reason == "time budget"
    assert len(found.steps) == 4 and now[0] <= 9.0  # a 5th step would end at 10 s
    assert found.max_rate_ci == (found.max_rate, None)  # never failed: no upper end


def test_the_interval_widens_when_the_p99_is_uncertain() -> None:
    steps = [fake_step(r, 1000.0) for r in (500.0, 900.0, 1100.0)]
    assert confident_bounds(steps) == (900.0, 1100.0)
    # 900/s passed with a p99 whose CI reaches past the objective: sure only of 500/s.
    steps[1] = fake_step(900.0, 1000.0, p99_ci=(30.0, 60.0))
    assert confident_bounds(steps) == (500.0, 1100.0)


def candidate(backend: str, workers: int, threads: int, batch: int, delay_ms: float) -> TrialConfig:
    """A configuration with a batching setting, as the online sweep searches it."""
    return TrialConfig(
        backend, workers, threads, batch, max_batch_size=batch, max_batch_delay_s=delay_ms / 1000
    )


def _result(delay: float, rate: float, size: int = 64) -> CandidateResult:
    return CandidateResult(candidate("thread", 2, 1, size, delay), steps=[fake_step(rate, rate)])


def test_the_winner_is_the_fastest_and_ties_go_to_the_shorter_delay() -> None:
    spec = OnlineRequest(objective_ms=50)
    results = [_result(10.0, 1000.0), _result(2.0, 980.0), _result(0.0, 500.0), _result(5.0, 900.0)]
    s = summarize(results, spec)
    assert s.winner is results[1]  # 980 is within 5% of 1000: a tie, and 2 ms < 10 ms
    assert s.default is results[3]
    assert "batch delay 2 ms measured best" in "\n".join(s.words)
    assert "900/s" in "\n".join(s.words)
    # max_pending: 980/s × 1 item × 50 ms = 49 by Little's law, but one batch per worker is 128.
    assert s.max_pending == 128 and "one batch per worker" in s.pending_reasoning


def test_nothing_sustainable_says_so() -> None:
    spec = OnlineRequest(objective_ms=50)
    bad = CandidateResult(candidate("thread", 2, 1, 64, 5.0), steps=[fake_step(100.0, 1.0)])
    s = summarize([bad], spec)
    assert s.winner is None and s.max_pending is None
    assert s.words[0].startswith("Online: no candidate sustained any rate with p99 <= 50 ms")


def test_a_spurious_failure_is_rechecked_and_the_climb_resumes() -> None:
    seen: dict[float, int] = {}

    def step(rate: float) -> StepResult:
        seen[rate] = seen.get(rate, 0) + 1
        if rate == 400.0 and seen[rate] == 1:  # a stall of the host: fails once, holds when measured again
            return fake_step(rate, 0.0)
        return fake_step(rate, 1234.0)

    found = search_max_rate(step, 100.0, SearchSettings(resolution=0.05, recheck=1))
    assert seen[400.0] == 2
    lo, hi = found.bracket
    assert lo <= 1234.0 < hi and hi / lo - 1 <= 0.05


def test_a_lucky_pass_is_confirmed_and_the_search_goes_on_below_it() -> None:
    seen: dict[float, int] = {}

    def step(rate: float) -> StepResult:
        seen[rate] = seen.get(rate, 0) + 1
        lucky = seen[rate] == 1 and 1234.0 < rate < 1400.0  # above capacity, held once by chance
        return fake_step(rate, 1e9 if lucky else 1234.0)

    found = search_max_rate(step, 100.0, SearchSettings(resolution=0.05))
    assert found.max_rate <= 1234.0 and found.stop_reason == "resolved within 5%"
    assert any(n == 2 for r, n in seen.items() if r > 1234.0)  # the lucky rate was measured again


def test_a_real_limit_and_a_real_max_cost_two_steps() -> None:
    plain = search_max_rate(lambda r: fake_step(r, 1234.0), 100.0, SearchSettings(recheck=0, confirm=0))
    checked = search_max_rate(lambda r: fake_step(r, 1234.0), 100.0, SearchSettings())
    assert len(checked.steps) == len(plain.steps) + 2 and checked.max_rate == plain.max_rate
