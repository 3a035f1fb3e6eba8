"""The gate's verdict from trials and a baseline: ok, regression, or inconclusive — never a busy host's regression."""

from __future__ import annotations

import pytest

from tuner.bench.gate import (
    GATE_MAX_TRIALS,
    GATE_REPEATS,
    BaselineFigures,
    decide,
    want_another,
)
from tuner.bench.types import OutsideLoad, TrialConfig, TrialResult
from tuner.errors import ExitCode
from tuner.hostload import OutsideProcess

pytestmark = pytest.mark.timeout(10)
BASE = BaselineFigures(
    throughput=1000.0, p99_ms=10.0, p99_ci_high_ms=10.5, fingerprint="abc", host_summary="2 cores"
)


def trial(
    throughput: float,
    outside: float = 0.01,
    *,
    contaminated: bool = False,
    p99: float = 10.0,
    p99_low: float | None = None,
    top: list[OutsideProcess] | None = None,
) -> TrialResult:
    n = 6 if contaminated else 3
    return TrialResult(
        config=TrialConfig("process", 2, 1, 64),
        throughput=throughput,
        throughput_ci=(throughput * 0.98, throughput * 1.02),
        latency_ms={"p50": p99 / 2, "p99": p99},
        latency_ci_ms={"p99": (p99_low if p99_low is not None else p99 * 0.95, p99 * 1.05)},
        service_ms={},
        cpu_share=0.9,
        peak_rss_mb={},
        stable=not contaminated,
        windows=[throughput] * n,
        warmup_s=0.5,
        cold_start_s=0.3,
        measured_s=float(n),
        items=int(throughput * n),
        discarded_windows=list(range(n)) if contaminated else [],
        contaminated=contaminated,
        outside=OutsideLoad(
            cpu=outside,
            cpu_max=outside,
            steal=0.0,
            swap_mb_s=0.0,
            windows=[outside] * n,
            limit=0.25,
            top=top or [],
        ),
    )


def test_unchanged_build_on_a_quiet_host_is_ok() -> None:
    v = decide([trial(1010), trial(990), trial(1003)], BASE, 10, usable_cores=2, fingerprint="abc")
    assert v.kind == "ok" and not v.busy and v.same_host
    assert v.line == "throughput 1.00k items/s vs 1.00k (+0.3%), p99 10 ms vs 10 ms (+0%): within 10% — ok"
    assert v.to_json(10)["ok"] is True and v.to_json(10)["verdict"] == "ok"


def test_a_real_slowdown_on_a_quiet_host_is_a_regression() -> None:
    v = decide([trial(800), trial(790), trial(805)], BASE, 10, usable_cores=2, fingerprint="abc")
    assert v.kind == "regression"
    assert (
        v.line
        == "throughput 800 items/s vs 1.00k (-20.0%), p99 10 ms vs 10 ms (+0%): beyond 10% — REGRESSION"
    )
    assert v.message == "throughput fell 20.0% (limit 10%)"


def test_a_busy_host_makes_it_inconclusive_never_a_regression() -> None:
    stress = [OutsideProcess("stress", 4242, 0.49), OutsideProcess("apt", 17, 0.2)]
    trials = [trial(700, 0.9, contaminated=True, p99=30.0, top=stress) for _ in range(GATE_MAX_TRIALS)]
    v = decide(trials, BASE, 10, usable_cores=2, fingerprint="abc")
    assert v.kind == "inconclusive" and v.busy and v.clean_trials == 0
    assert (
        "beyond 10% (throughput fell 30.0%, p99 rose 200%) — inconclusive: host busy — outside load 90% of 2 cores "
        "(up to 90%)" in v.line
    )
    assert "5 of 5 trials could not get clean windows, 30 of 30 windows busy" in v.line
    assert "busiest others: stress (pid 4242) 49%, apt (pid 17) 20%" in v.line
    assert v.message.endswith("no verdict: re-run on a quiet host (throughput fell 30.0%, p99 rose 200%)")
    js = v.to_json(10)
    assert js["verdict"] == "inconclusive" and js["host_busy"] and js["busiest_others"][0]["name"] == "stress"


def test_a_busy_host_that_still_keeps_up_is_ok() -> None:
    trials = [trial(1001, 0.9, contaminated=True) for _ in range(3)]
    v = decide(trials, BASE, 10, usable_cores=2)
    assert v.kind == "ok" and v.busy
    assert v.line.endswith(
        "within 10% — ok (on a busy host: outside load 90% of 2 cores, 18 of 18 windows busy — "
        "a slower build could pass unseen)"
    )


def test_clean_trials_decide_when_there_are_enough() -> None:
    # One busy trial among clean ones does not drag the median: the clean ones decide.
    trials = [trial(600, 0.9, contaminated=True), trial(1000), trial(995)]
    v = decide(trials, BASE, 10, usable_cores=2)
    assert v.kind == "ok" and not v.busy and v.clean_trials == 2
    assert "6 busy windows discarded" in v.line
    # ... and a real slowdown is still seen through them.
    slow = decide([trial(600, 0.9, contaminated=True), trial(800), trial(790)], BASE, 10, usable_cores=2)
    assert slow.kind == "regression"


def test_a_drop_the_outside_load_could_explain_is_inconclusive() -> None:
    # Clean windows (18% outside) but a 15% drop: up to 18 points of it may be the other processes.
    v = decide([trial(850, 0.18), trial(845, 0.18), trial(852, 0.18)], BASE, 10, usable_cores=2)
    assert v.kind == "inconclusive" and not v.busy
    assert "inconclusive: the outside load while measuring (18% of 2 cores) could explain it" in v.line
    # A 40% drop under the same load is beyond what it could explain: a regression.
    v = decide([trial(600, 0.18), trial(605, 0.18), trial(598, 0.18)], BASE, 10, usable_cores=2)
    assert v.kind == "regression"


def test_a_p99_rise_is_trusted_only_on_a_quiet_host() -> None:
    # The new p99's interval sits above the baseline's: a regression on a quiet host ...
    quiet = [trial(1000, 0.01, p99=20.0, p99_low=18.0) for _ in range(3)]
    assert decide(quiet, BASE, 10, usable_cores=2).kind == "regression"
    # ... not with 12% of the cores busy elsewhere (tail latency is the first thing load hurts).
    loaded = [trial(1000, 0.12, p99=20.0, p99_low=18.0) for _ in range(3)]
    v = decide(loaded, BASE, 10, usable_cores=2)
    assert v.kind == "inconclusive" and "p99 rose 100% on a host 12% busy" in v.line
    # Intervals that overlap are no p99 regression at all.
    overlap = [trial(1000, 0.01, p99=11.0, p99_low=10.0) for _ in range(3)]
    assert decide(overlap, BASE, 10, usable_cores=2).kind == "ok"


def test_another_host_is_said_in_the_verdict() -> None:
    v = decide([trial(1000)] * 3, BASE, 10, usable_cores=2, fingerprint="other")
    assert v.kind == "ok" and not v.same_host
    assert v.line.endswith("· baseline measured on another host (2 cores)")
    slow = decide([trial(700)] * 3, BASE, 10, usable_cores=2, fingerprint="other")
    assert slow.message.endswith("— the baseline was measured on another host")


def test_busy_trials_are_measured_again_within_a_bound() -> None:
    busy, clean = trial(700, 0.9, contaminated=True), trial(1000)
    assert want_another([])
    assert want_another([clean, clean])
    assert not want_another([clean] * GATE_REPEATS)
    assert want_another([busy, clean, clean])  # a third clean one is worth one more trial
    assert not want_another([busy, clean, clean, clean])
    assert not want_another([busy] * GATE_MAX_TRIALS)  # and no more than that


def test_exit_code_three_is_inconclusive() -> None:
    from tuner.errors import Inconclusive, exit_code_for

    assert exit_code_for(Inconclusive("x")) == ExitCode.INCONCLUSIVE == 3


def test_a_baseline_measured_on_a_busy_host_is_said() -> None:
    from dataclasses import replace

    low = replace(BASE, outside=0.42, contaminated=True)
    v = decide([trial(1000)] * 3, low, 10, usable_cores=2)
    assert v.kind == "ok"
    assert v.line.endswith(
        "· the baseline was measured on a busy host (outside load 42%): it reads low, so a slower "
        "build can pass unseen — re-measure it on a quiet host"
    )
