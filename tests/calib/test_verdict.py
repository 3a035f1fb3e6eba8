"""The host-adjusted verdict on recorded calibrations and trials, alone (judge) and in the gate (decide)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tuner.bench.gate import BaselineFigures, HostCheck, Verdict, decide
from tuner.bench.hostspeed import OLD_BASELINE, Nature, judge
from tuner.calibrate import Calibration
from tuner.errors import Inconclusive, exit_code_for

from .helpers import recorded, scaled, slower, trial

pytestmark = pytest.mark.timeout(10)

PYTHON = Nature("python", ("thread ×2 kept 1.0 cores busy",))
UNCLEAR = Nature("unclear")
BASE = BaselineFigures(
    throughput=1000.0,
    p99_ms=10.0,
    p99_ci_high_ms=10.5,
    fingerprint="abc",
    host_summary="2 cores",
    throughput_ci=(980.0, 1020.0),
    calibration=recorded(),
    nature=PYTHON,
)


def gate(
    throughput: float, cal: Calibration | None, base: BaselineFigures = BASE, tolerance: float = 10, **kw: Any
) -> Verdict:
    p99 = kw.pop("p99", 10.0)
    trials = [trial(throughput * f, p99=p99) for f in (0.995, 1.0, 1.005)]
    return decide(trials, base, tolerance, usable_cores=2, fingerprint="abc", host=HostCheck(cal), **kw)


def test_no_drift_same_speed_is_ok_and_says_the_hosts_are_alike() -> None:
    v = gate(1000, recorded())
    assert v.kind == "ok" and v.same_host is True
    assert v.host_speed is not None and v.host_speed.kind is None and v.host_speed.hosts == "alike"
    assert v.line == (
        "throughput 1.00k items/s vs 1.00k (+0.0%), p99 10 ms vs 10 ms (+0%): within 10% — ok · hosts alike: "
        "this host runs the reference kernels as fast as the baseline's (calibration CI 5% slower to 6% "
        "faster; python kernel, 2 cores)"
    )


def test_a_host_30_percent_slower_with_the_unchanged_build_is_no_regression() -> None:
    cur = slower(recorded(), 0.7)
    # Today's rule, on the fingerprint alone, calls it a regression (issue 23) ...
    trials = [trial(700 * f) for f in (0.995, 1.0, 1.005)]
    assert decide(trials, BASE, 10, usable_cores=2, fingerprint="abc").kind == "regression"
    # ... the host-adjusted rule, for a python-bound model (its kernel reproduces within a few %): ok.
    v = gate(700, cur)
    assert v.kind == "ok" and v.same_host is False
    assert v.line == (
        "throughput 700 items/s vs 1.00k (-30.0%; host-adjusted +0.0%, CI -6% to +6%), p99 10 ms vs 10 ms "
        "(+0%): within 10% — ok · this host runs the reference kernels 30% slower than the baseline's "
        "(calibration CI 26–34% slower; python kernel, 2 cores)"
    )


def test_the_words_of_the_issue_when_the_host_explains_the_change() -> None:
    # builtin:mlp -28% on a host 27% slower; the BLAS kernel's all-core scores were uncertain
    # (a first calibration in a fresh process): what the host explains straddles the tolerance.
    v = gate(720, slower(recorded(), 0.73), replace(BASE, nature=Nature("blas")))
    assert v.kind == "inconclusive"
    assert v.line == (
        "throughput 720 items/s vs 1.00k (-28.0%; host-adjusted -1.4%, CI -19% to +20%), p99 10 ms vs 10 ms "
        "(+0%): beyond 10% (throughput fell 28.0%) — inconclusive: this host runs the reference kernels 27% "
        "slower than the baseline's (calibration CI 12–40% slower; blas kernel, 2 cores); the change (-28%) "
        "is within what that explains"
    )
    assert v.message.endswith(
        "; no verdict: gate on a host as fast as the baseline's, or re-measure the baseline on this one"
    )
    assert exit_code_for(Inconclusive(v.message)) == 3


def test_a_build_20_percent_slower_on_the_same_host_is_a_regression() -> None:
    v = gate(800, scaled(recorded(), python=1.01, blas=0.99))  # calibration noise, hosts alike
    assert v.kind == "regression"
    assert v.line == (
        "throughput 800 items/s vs 1.00k (-20.0%), p99 10 ms vs 10 ms (+0%): beyond 10% — REGRESSION · hosts "
        "alike: this host runs the reference kernels 1% faster than the baseline's (calibration CI 4% slower "
        "to 7% faster; python kernel, 2 cores)"
    )
    assert v.message == "throughput fell 20.0% (limit 10%)"


def test_a_much_slower_build_on_a_slower_host_is_still_a_regression() -> None:
    v = gate(700 * 0.6, slower(recorded(), 0.7))
    assert v.kind == "regression"
    assert v.line.startswith(
        "throughput 420 items/s vs 1.00k (-58.0%; host-adjusted -40.0%, CI -44% to -36%), p99"
    )
    assert v.line.endswith(
        ": beyond 10% — REGRESSION · this host runs the reference kernels 30% slower than the baseline's "
        "(calibration CI 26–34% slower; python kernel, 2 cores); the change (-58%) is more than that explains"
    )
    assert v.message == "host-adjusted throughput fell 40.0% (limit 10%)"
    # ... unless the outside load while measuring could explain what is left.
    trials = [trial(420 * f, outside=0.3) for f in (0.995, 1.0, 1.005)]
    v = decide(trials, BASE, 10, usable_cores=2, fingerprint="abc", host=HostCheck(slower(recorded(), 0.7)))
    assert v.kind == "inconclusive" and "could explain it (host-adjusted throughput fell 40.0%" in v.line


def test_a_faster_host_hiding_a_slower_build_is_caught_but_never_failed_on_the_calibration_alone() -> None:
    faster = scaled(recorded(), python=1.3)
    # 15% slower as measured on a host 30% faster: a regression either way.
    assert gate(850, faster).kind == "regression"
    # 5% slower as measured: within the tolerance, beyond it only relative to the host — not ok
    # (today's rule would pass it), not REGRESSION (a calibration that read wrong would fail it).
    v = gate(950, faster)
    assert v.kind == "inconclusive"
    assert v.line.endswith(
        "(+0%): within 10% as measured — inconclusive: this host runs the reference kernels 30% faster than "
        "the baseline's (calibration CI 23–37% faster; python kernel, 2 cores); relative to it the change is "
        "beyond 10%, as measured it is not — the calibrations alone never fail a build"
    )


def test_kernels_that_disagree_leave_an_unclear_model_inconclusive() -> None:
    cur = scaled(recorded(), python=0.7)  # the python kernel 30% slower, BLAS and memory as fast
    base = replace(BASE, nature=UNCLEAR)
    v = gate(800, cur, base)
    assert v.kind == "inconclusive"
    assert v.line.endswith(
        "— inconclusive: the model's nature is unclear and the reference kernels disagree on this host's "
        "speed (python 30% slower, blas as fast, memory as fast); the change (-20%) is within what they explain"
    )
    assert v.line.startswith(
        "throughput 800 items/s vs 1.00k (-20.0%; host-adjusted -20.0%, CI -36% to +21%)"
    )
    # Known natures pick their kernel: python explains the drop. BLAS reads "as fast", but its
    # recorded CI (17% slower to 21% faster) is wider than the tolerance: it cannot tell a 20% slower
    # build from a slower host, so no verdict — never "hosts alike" from a CI that wide.
    assert gate(800, cur, replace(BASE, nature=PYTHON)).kind == "ok"
    blas = gate(800, cur, replace(BASE, nature=Nature("blas")))
    assert blas.kind == "inconclusive" and "calibration CI 17% slower to 21% faster; blas kernel" in blas.line
    # A drop that no kernel explains is a regression even for an unclear model.
    assert gate(400, cur, base).kind == "regression"
    # Without a recorded nature the kernels must agree, as for an unclear one.
    assert gate(800, cur, replace(BASE, nature=None)).kind == "inconclusive"


def test_an_old_baseline_falls_back_to_todays_rule_and_says_so() -> None:
    old = replace(BASE, calibration=None, nature=None)
    v = gate(700, slower(recorded(), 0.7), old)
    assert v.kind == "regression"  # today's rule
    assert v.line == (
        "throughput 700 items/s vs 1.00k (-30.0%), p99 10 ms vs 10 ms (+0%): beyond 10% — REGRESSION · "
        + OLD_BASELINE
    )
    assert OLD_BASELINE == (
        "the baseline has no host calibration: re-measure the baseline with this version for host-adjusted verdicts"
    )
    # The fingerprints match, yet the hosts are not claimed alike: nothing can tell.
    assert v.same_host is None and v.to_json(10)["same_host"] is None
    ok = gate(1000, recorded(), old)
    assert ok.kind == "ok" and ok.same_host is None and ok.line.endswith(OLD_BASELINE)


def test_without_host_the_gate_is_as_before() -> None:
    trials = [trial(800 * f) for f in (0.995, 1.0, 1.005)]
    v = decide(trials, BASE, 10, usable_cores=2, fingerprint="abc")
    assert v.host_speed is None and v.same_host is True and "host_speed" not in v.to_json(10)
    assert (
        v.line
        == "throughput 800 items/s vs 1.00k (-20.0%), p99 10 ms vs 10 ms (+0%): beyond 10% — REGRESSION"
    )


def test_a_host_that_could_not_be_calibrated_is_said() -> None:
    trials = [trial(1000)] * 3
    v = decide(
        trials,
        BASE,
        10,
        usable_cores=2,
        fingerprint="abc",
        host=HostCheck(None, "python runner exited with code -9"),
    )
    assert v.kind == "ok" and v.same_host is None
    assert v.line.endswith(
        " · this host was not calibrated (python runner exited with code -9): judged without host adjustment"
    )


def test_a_busy_calibration_is_not_used() -> None:
    cur = slower(recorded(), 0.7)
    py = {m: replace(s, busy=True) for m, s in cur.scores["python"].items() if s is not None}
    cur = replace(cur, scores={**cur.scores, "python": py})
    v = gate(700, cur)
    assert v.kind == "regression"  # today's rule: nothing trustworthy to adjust by
    assert v.line.endswith(
        "the host calibrations do not compare on the python kernel (python single, python all: this host's "
        "calibration was busy): judged without host adjustment"
    )


def test_a_model_that_mostly_waits_is_not_adjusted() -> None:
    base = replace(BASE, nature=Nature("io"))
    v = gate(700, slower(recorded(), 0.7), base)
    assert v.kind == "regression"
    assert " · the model mostly waits (io): host speed does not set its throughput — this host runs" in v.line


def test_a_p99_rise_a_slower_host_explains_is_no_regression() -> None:
    # 30% slower host: p99 10 → 14 ms (+40%) is what the host's speed explains ...
    assert gate(700, slower(recorded(), 0.7), tolerance=15, p99=14.0).kind == "ok"
    # ... on the same host the same rise is a regression.
    v = gate(1000, recorded(), p99=14.0)
    assert v.kind == "regression" and "p99 rose 40%" in v.message


def test_the_json_has_both_calibrations_the_ratio_and_the_adjusted_change() -> None:
    v = gate(700, slower(recorded(), 0.7))
    out = json.loads(json.dumps(v.to_json(10)))
    hs = out["host_speed"]
    assert hs["verdict"] == "ok" and hs["hosts"] == "differ" and hs["mode"] == "all"
    assert hs["nature"] == {"kernel": "python", "evidence": ["thread ×2 kept 1.0 cores busy"]}
    assert hs["ratio"]["kernel"] == "python" and hs["ratio"]["mode"] == "all" and hs["ratio"]["ratio"] == 0.7
    assert hs["throughput_change_pct"] == -30.0 and abs(hs["adjusted_change_pct"]) < 0.6
    assert hs["adjusted_change_ci_pct"] == [-6.04, 6.42]
    assert Calibration.from_dict(hs["baseline_calibration"]) == recorded()
    now, then = (
        Calibration.from_dict(hs["calibration"]).score("python", "all"),
        recorded().score("python", "all"),
    )
    assert now is not None and then is not None and now.score == pytest.approx(0.7 * then.score, rel=1e-3)
    assert out["same_host"] is False


def test_judge_alone() -> None:
    hs = judge(
        1000.0, 700.0, 15, base_ci=(980, 1020), ci=(690, 710),
        base_calibration=recorded(), calibration=slower(recorded(), 0.7), nature=PYTHON, mode="single",
    )  # fmt: skip
    assert hs.kind == "ok" and hs.ratio is not None and hs.ratio.mode == "single"
    assert hs.line(15) == (
        "host-adjusted +0.0%, CI -6% to +6%: within 15% — ok · this host runs the reference kernels 30% "
        "slower than the baseline's (calibration CI 26–34% slower; python kernel, 1 core)"
    )
    assert hs.latency_factor == pytest.approx(1 / hs.ratio.low)
    old = judge(1000.0, 700.0, 10, base_calibration=None, calibration=recorded(), nature=None)
    assert old.kind is None and old.line(10) == OLD_BASELINE and old.hosts == "unknown"
