"""The side-by-side verdict (tuner.bench.paired) on synthetic pairs of trials, without processes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from calib.helpers import trial
from tuner.bench.paired import MAX_PAIRS, Pair, decide_paired, paired_change, want_another_pair


def measured(throughput: float, spread: float = 0.02, **kw: object) -> object:
    t = trial(throughput, spread=spread, **kw)  # type: ignore[arg-type]
    return replace(t, windows=[throughput * (1 - spread), throughput, throughput * (1 + spread)])


def pairs(ratios: list[float], *, a: float = 1000.0, **kw: object) -> list[Pair]:
    return [
        Pair(measured(a, **kw), measured(a * r, **kw), "AB" if i % 2 == 0 else "BA")  # type: ignore[arg-type]
        for i, r in enumerate(ratios)
    ]


def decide(ps: list[Pair]) -> object:
    return decide_paired(ps, 10.0, against="old.py:spin", usable_cores=2)


def test_the_unchanged_build_side_by_side_is_ok() -> None:
    v = decide(pairs([1.01, 0.98, 1.0]))
    assert v.kind == "ok" and v.same_host is True
    assert v.line.startswith("side by side with old.py:spin, 3 pairs: throughput ")
    assert v.line.endswith("within 10% — ok")


def test_a_build_20_percent_slower_is_a_regression_whatever_host_measured_the_profile() -> None:
    v = decide(pairs([0.80, 0.81, 0.79]))
    assert v.kind == "regression"
    assert "-20.0%" in v.line and "REGRESSION" in v.line
    assert v.message.startswith("throughput -20.0% against old.py:spin, side by side")
    got = v.to_json(10.0)["side_by_side"]
    assert got["against"] == "old.py:spin" and len(got["pairs"]) == 3
    assert got["ci_pct"][1] < -10 and [p["order"] for p in got["pairs"]] == ["AB", "BA", "AB"]


def test_pairs_that_disagree_straddle_the_tolerance_and_ask_for_more() -> None:
    ps = pairs([0.75, 0.97, 1.02])
    change = paired_change(ps)
    assert change.low_pct < -10 < change.high_pct
    assert want_another_pair(ps, 10.0)
    v = decide(ps)
    assert v.kind == "inconclusive" and "straddles -10%" in v.line


def test_enough_pairs_and_a_clear_answer_stop_the_measuring() -> None:
    assert want_another_pair(pairs([1.0, 1.0]), 10.0)  # fewer than the minimum
    assert not want_another_pair(pairs([1.0, 0.99, 1.01]), 10.0)  # clearly ok
    assert not want_another_pair(pairs([0.8, 0.8, 0.81]), 10.0)  # clearly a regression
    assert not want_another_pair(pairs([0.75, 0.97, 1.02] * 2)[:MAX_PAIRS], 10.0)  # at the cap


def test_a_few_pairs_that_agree_by_chance_claim_no_more_than_their_windows() -> None:
    # Three identical ratios: no scatter between pairs, but each pair's windows are ±15%.
    ps = pairs([0.88, 0.88, 0.88], spread=0.15)
    change = paired_change(ps)
    assert change.high_pct > -10  # not "clearly beyond": the windows cannot tell
    assert decide(ps).kind == "inconclusive"


def test_a_busy_host_is_never_a_regression_side_by_side() -> None:
    busy = pairs([0.8, 0.8, 0.8], contaminated=True, outside=0.6)
    assert want_another_pair(busy, 10.0)  # contaminated pairs ask for more
    v = decide(busy)
    assert v.kind == "inconclusive" and v.busy and "host busy — 3 of 3 pairs" in v.line
    # ... but a build that keeps up on a busy host is ok.
    assert decide(pairs([1.0, 1.01, 0.99], contaminated=True, outside=0.6)).kind == "ok"


def test_a_p99_rise_in_every_pair_on_a_quiet_host_is_a_regression() -> None:
    ps = [Pair(p.a, replace(p.b, latency_ms={"p50": 10, "p99": 30}, latency_ci_ms={"p99": (28, 32)}), p.order)
          for p in pairs([1.0, 1.0, 1.0], outside=0.0)]  # fmt: skip
    v = decide(ps)
    assert v.kind == "regression" and "p99 rose 200% in every pair" in v.message


def test_nothing_measured_is_an_error_of_the_caller() -> None:
    failed = [Pair(measured(0.0), measured(0.0), "AB")]
    with pytest.raises(ValueError):
        decide(failed)
