"""Two calibrations compared: a speed ratio per kernel and mode, its CI, and the words of the issue."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from tuner.calibrate import REPRODUCIBILITY, KernelScore, compare

from .helpers import recorded, scaled, slower

pytestmark = pytest.mark.timeout(10)


def test_one_calibration_against_itself_is_alike() -> None:
    cal = recorded()
    speed = compare(cal, cal)
    assert len(speed.ratios) == 6 and speed.problems == ()
    assert all(r.ratio == 1.0 and not r.differs for r in speed.ratios)
    assert not speed.differs and speed.agree("all") and speed.agree("single")
    assert speed.describe().startswith(
        "this host runs the reference kernels as fast as the baseline's (calibration CI"
    )


def test_a_host_27_percent_slower_in_the_words_of_the_issue() -> None:
    base = recorded()
    speed = compare(base, slower(base, 0.73))
    assert all(math.isclose(r.ratio, 0.73) and r.differs for r in speed.ratios)
    r = speed.get("python", "all")
    assert r is not None
    assert speed.describe(r) == (
        "this host runs the reference kernels 27% slower than the baseline's "
        f"(calibration CI {r.ci_words()}; python kernel, 2 cores)"
    )
    assert r.ci_words().endswith("% slower") and "to" not in r.ci_words()
    assert speed.describe().startswith("this host runs the reference kernels 27% slower than the baseline's")
    assert speed.describe().endswith("; python 27% slower, blas 27% slower, memory 27% slower; 2 cores)")


def test_the_ratio_ci_adds_the_two_scores_log_widths_in_quadrature() -> None:
    # Scores whose own CIs are narrower than the reproducibility floor: each counts as ±floor.
    tight = KernelScore(100.0, (99.5, 100.5), reps=6, discarded=0, stable=True)
    base = recorded()
    a = replace(base, scores={"blas": {"single": tight, "all": None}})
    b = replace(base, scores={"blas": {"single": replace(tight, score=80.0, ci=(79.6, 80.4)), "all": None}})
    r = compare(a, b).get("blas", "single")
    assert r is not None
    floor = math.log1p(REPRODUCIBILITY["blas"])
    half = math.hypot(floor, floor)
    assert math.isclose(r.ratio, 0.8)
    assert math.isclose(r.low, 0.8 * math.exp(-half)) and math.isclose(r.high, 0.8 * math.exp(half))
    # A wide CI counts as measured: this host's low side with the baseline's high side.
    wide = replace(tight, score=80.0, ci=(60.0, 84.0))
    r = compare(a, replace(b, scores={"blas": {"single": wide, "all": None}})).get("blas", "single")
    assert r is not None
    assert math.isclose(r.low, 0.8 * math.exp(-math.hypot(math.log(80 / 60), floor)))


def test_what_cannot_be_compared_is_left_out_and_said() -> None:
    base = recorded()
    cur = slower(base, 0.9)
    busy = replace(cur.scores["blas"]["all"], busy=True)  # type: ignore[type-var]
    cur = replace(cur, scores={**cur.scores, "blas": {**cur.scores["blas"], "all": busy}})
    speed = compare(base, cur)
    assert speed.get("blas", "all") is None and speed.get("blas", "single") is not None
    assert speed.problems == ("blas all: this host's calibration was busy",)
    # Another number of usable cores: "all" measures another amount of hardware.
    four = replace(slower(base, 0.9), cores=4)
    speed = compare(base, four)
    assert [r.mode for r in speed.ratios] == ["single"] * 3
    assert "python all: 2 cores vs 4" in speed.problems


def test_kernels_that_disagree_and_their_envelope() -> None:
    base = recorded()
    speed = compare(base, scaled(base, python=0.7))
    assert not speed.agree("all")
    env = speed.envelope("all")
    assert env is not None and env.kernel == "reference"
    py, blas = speed.get("python", "all"), speed.get("blas", "all")
    assert py is not None and blas is not None
    assert env.low == py.low and env.high >= blas.high
    assert math.isclose(env.ratio, 1.0)  # the median of 0.7, 1, 1
