"""The runtime's ``hedge`` option: served items exactly once with hedging, duplicate work in stats(),
the delay from a profile (its ``recommended.hedge``, or the p95 service time it measured), bad values
refused with one line."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

from tuner.bench.profiles import build_profile
from tuner.bench.recommend import recommend
from tuner.bench.request import SweepRequest
from tuner.bench.types import Objective, TrialConfig, TrialResult
from tuner.engine import FaultPlan
from tuner.engine.hedging import HEDGE_BURST
from tuner.errors import ConfigError
from tuner.hardware import Host
from tuner.profile import load_profile, normalise_platform, save_profile
from tuner.runtime import Runtime, RuntimeSettings

from .helpers import host_info, model_spec, write_profile

WORKERS, WAVE, WAVES = 3, 2, 10

pytestmark = pytest.mark.timeout(60)


def _plan() -> FaultPlan:
    """20x stragglers (0.4 s for a 20 ms partition), seeded so that at least two single-item
    partitions of the run straggle on their first copy and not on their hedge copy."""
    for seed in range(1000):
        plan = FaultPlan(slow=0.15, slow_factor=20.0, seed=seed)
        rescued = [
            i for i in range(WAVE * WAVES) if plan.decide(i, 1, 1) == "slow" and not plan.decide(i, 1, 1, 1)
        ]
        if len(rescued) >= 2:
            return plan
    raise AssertionError("no seed")


@pytest.mark.timeout(60)
def test_submitted_items_come_back_once_and_stats_report_the_duplicate_work() -> None:
    rt = Runtime(
        model_spec("slower_double"),  # 20 ms a partition
        backend="thread",
        workers=WORKERS,
        partition_size=1,
        max_batch_delay_ms=0.0,
        hedge=0.03,
        faults=_plan(),
    )
    outputs: list[Any] = []
    with rt:
        # Waves of two requests on three workers: a worker is idle for a straggler's hedge.
        for wave in range(WAVES):
            futures = [rt.submit(wave * WAVE + k) for k in range(WAVE)]
            outputs.extend(f.result(timeout=30) for f in futures)
        s = rt.stats()
    assert outputs == [2 * i for i in range(WAVE * WAVES)]
    assert s.items_done == WAVE * WAVES and s.items_failed == 0
    assert s.hedges_won >= 2 and s.hedges >= s.hedges_won
    assert s.duplicate_work == pytest.approx(s.hedges / (WAVE * WAVES))
    assert s.to_dict()["duplicate_work"] == s.duplicate_work
    assert s.hedges <= 0.05 * WAVE * WAVES + HEDGE_BURST


@pytest.mark.timeout(10)
def test_without_hedging_stats_say_none() -> None:
    with Runtime(model_spec("slow_double"), backend="thread", workers=2) as rt:
        assert list(rt.map(range(10))) == [2 * i for i in range(10)]
        s = rt.stats()
    assert (s.hedges, s.hedges_won, s.duplicate_work) == (0, 0, 0.0)
    assert rt.engine_config.hedge_after_s is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "hedge=True takes its delay from a profile's p95 service time, and there is no profile"),
        (0, "hedge must be True, False, None or a delay in seconds > 0 (got 0)"),
        (-0.5, "(got -0.5)"),
        (math.nan, "(got nan)"),
        (math.inf, "(got inf)"),
        ("soon", "(got 'soon')"),
    ],
)
def test_a_bad_hedge_value_is_one_line(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Runtime("builtin:sleep", workers=2, hedge=value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"hedge_budget": 0.0}, "hedge_budget must be a finite number > 0 and <= 1 (got 0.0)"),
        ({"hedge_budget": math.nan}, "(got nan)"),
        ({"hedge_after_s": -1.0}, "hedge_after_s must be a finite number > 0 (or None) (got -1.0)"),
    ],
)
def test_bad_hedge_settings_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RuntimeSettings(workers=2, **kw)
    assert message in str(info.value)


def test_a_number_is_the_delay_in_seconds_and_false_turns_it_off() -> None:
    rt = Runtime("builtin:sleep", workers=2, hedge=0.25, hedge_budget=0.1)
    assert (rt.engine_config.hedge_after_s, rt.engine_config.hedge_budget) == (0.25, 0.1)
    assert "hedge after 250 ms (≤10% after a first burst)" in rt.settings.describe()
    assert Runtime("builtin:sleep", workers=2, hedge=False).engine_config.hedge_after_s is None


# ------------------------------------------------------------------------------------ from a profile


def test_a_profile_that_says_hedge_is_applied_and_the_option_overrides_it(
    tmp_path: Path, this_host: Host
) -> None:
    path = write_profile(
        tmp_path / "p.yaml", host_info(this_host), workers=2, hedge={"after_ms": 12.5, "budget": 0.02}
    )
    rt = Runtime.from_profile(path)
    assert (rt.engine_config.hedge_after_s, rt.engine_config.hedge_budget) == (0.0125, 0.02)
    assert Runtime.from_profile(path, hedge=False).engine_config.hedge_after_s is None
    assert Runtime.from_profile(path, hedge=0.2).engine_config.hedge_after_s == 0.2
    assert Runtime.from_profile(path, hedge=True).engine_config.hedge_after_s == 0.0125


def test_a_platform_override_can_turn_hedging_off(tmp_path: Path, this_host: Host) -> None:
    here = normalise_platform(sys.platform)
    assert here is not None
    path = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host),
        workers=2,
        hedge={"after_ms": 12.5},
        platforms={here: {"hedge": None}},
    )
    assert Runtime.from_profile(path).engine_config.hedge_after_s is None


def _trial(workers: int, service_ms: dict[str, float]) -> TrialResult:
    return TrialResult(
        config=TrialConfig("thread", workers, 1, 8),
        throughput=1000.0,
        throughput_ci=(990.0, 1010.0),
        latency_ms={"p50": 5.0, "p90": 8.0, "p95": 9.0, "p99": 12.0},
        latency_ci_ms={"p99": (11.0, 13.0)},
        service_ms=service_ms,
        cpu_share=0.5,
        peak_rss_mb={"per_worker": 50.0, "total": 100.0},
        stable=True,
        windows=[1000.0] * 3,
        warmup_s=0.5,
        cold_start_s=0.3,
        measured_s=3.0,
        items=3000,
    )


def _profile_of(tmp_path: Path, host: Host, trial: TrialResult) -> tuple[Path, list[str]]:
    rec = recommend([trial], Objective(), host)
    profile = build_profile(rec, name="h", request=SweepRequest(model="builtin:sleep"), host=host, info=None)
    return save_profile(profile, tmp_path / "h.yaml"), rec.words


def test_tuner_bench_recommends_hedging_at_the_p95_it_measured(tmp_path: Path, this_host: Host) -> None:
    service = {"p50": 3.0, "p95": 4.2, "p99": 6.0, "p999": 9.0, "max": 12.0}
    path, words = _profile_of(tmp_path, this_host, _trial(2, service))
    profile = load_profile(path)
    assert profile.recommended.hedge is not None and profile.recommended.hedge.after_ms == 4.2
    assert profile.recommended.hedge.budget == 0.05
    assert profile.evidence.service_time_ms is not None and profile.evidence.service_time_ms.p95 == 4.2
    assert any("still running after 4.2 ms (the p95 service time)" in w for w in words)
    assert Runtime.from_profile(path).engine_config.hedge_after_s == pytest.approx(0.0042)


@pytest.mark.parametrize(
    ("workers", "p95", "why"),
    [(1, 4.2, "with one worker there is no idle worker"), (2, 0.4, "too short for a second copy to pay")],
)
def test_no_hedging_for_one_worker_or_tiny_partitions(
    tmp_path: Path, this_host: Host, workers: int, p95: float, why: str
) -> None:
    trial = _trial(workers, {"p50": p95 / 2, "p95": p95, "p99": p95 * 2, "p999": p95 * 3, "max": p95 * 4})
    rec = recommend([trial], Objective(), this_host)
    assert rec.deployment is not None
    assert rec.deployment.hedge_after_s is None and why in rec.hedge_reasoning
    path, _ = _profile_of(tmp_path, this_host, trial)
    profile = load_profile(path)
    assert profile.recommended.hedge is None
    # hedge=True still finds the p95 the profile's evidence records
    assert Runtime.from_profile(path, hedge=True).engine_config.hedge_after_s == pytest.approx(p95 / 1000)


def test_hedge_true_on_a_profile_without_a_p95_says_so(tmp_path: Path, this_host: Host) -> None:
    path = write_profile(tmp_path / "old.yaml", host_info(this_host), workers=2)
    with pytest.raises(ConfigError) as info:
        Runtime.from_profile(path, hedge=True)
    assert "this profile records no p95 service time" in str(info.value)
    assert "hedge=0.02" in str(info.value)
