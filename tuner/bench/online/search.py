"""The highest sustainable rate of one candidate: geometric steps up, then bisection, within a budget.

::

    r = start ──► step(r) ── sustainable ──► r × factor … until a step fails   (or down by ÷factor
                                                                               until one holds)
    bracket [highest sustainable, lowest unsustainable] ──► step(√(lo·hi)) … until hi/lo − 1 <= resolution
                                                           or the budget cannot fit another step

The search only sees verdicts (:class:`~tuner.bench.online.step.StepResult.sustainable`), so it is a
pure function of a step callable and is tested on synthetic capacities. A step can only narrow the
bracket (a sustainable step raises ``lo`` only below ``hi``, an unsustainable one lowers ``hi`` only
above ``lo``) — so one spurious failure (a stall of the shared host) would cap the search for good.
Hence the **re-check**: once the bracket is resolved, the failing end is measured once more
(``recheck`` times at most); if it now holds, the failure was noise, it becomes ``lo`` and the climb
resumes. A real limit fails again, which costs one step.

**The interval on the max rate** (``max_rate_ci``) is not a bootstrap: a max rate is a boundary, not a
mean. Its low end is the highest rate whose step was sustainable *with confidence* — every criterion
held and even the upper end of its p99's 95% CI was within the objective; its high end is the lowest
rate that failed with confidence — a non-latency criterion failed, or even the lower end of its p99
CI broke the objective. Between the two ends the verdict is within the measurement's noise. The high
end is None when the search never reached a rate that failed (the budget ran out climbing).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tuner.bench.online.step import StepResult

__all__ = ["RateSearch", "SearchSettings", "confident_bounds", "search_max_rate"]


@dataclass(frozen=True)
class SearchSettings:
    """How one rate search walks: where it starts, how it climbs, when it stops."""

    factor: float = 2.0  # geometric step while climbing (or descending)
    resolution: float = 0.05  # stop bisecting when hi/lo − 1 is at most this
    max_steps: int = 16
    min_rate: float = 1.0  # below this many requests/s there is nothing to serve: give up
    recheck: int = 1  # times the failing end of a resolved bracket is measured again


@dataclass
class RateSearch:
    """What one search found: every step, the highest sustainable one, and the bracket."""

    steps: list[StepResult] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def best(self) -> StepResult | None:
        """The sustainable step at the highest rate (None when no step was sustainable); a rate that
        failed and then held when re-checked counts as held (the failure was the noise)."""
        ok = [s for s in self.steps if s.sustainable]
        return max(ok, key=lambda s: s.rate) if ok else None

    @property
    def max_rate(self) -> float:
        b = self.best
        return b.rate if b is not None else 0.0

    @property
    def bracket(self) -> tuple[float, float | None]:
        """(highest sustainable rate, lowest unsustainable rate above it, or None)."""
        lo = self.max_rate
        above = [s.rate for s in self.steps if not s.sustainable and s.rate > lo]
        return lo, (min(above) if above else None)

    @property
    def max_rate_ci(self) -> tuple[float, float | None]:
        return confident_bounds(self.steps)


def _surely_ok(s: StepResult) -> bool:
    hi = s.latency_ci_ms.get("p99", (math.inf, math.inf))[1]
    return s.sustainable and hi <= s.objective_ms


def _surely_bad(s: StepResult) -> bool:
    if s.sustainable:
        return False
    latency_only = all(r.startswith("p99 ") for r in s.reasons)
    if not latency_only:
        return True
    lo = s.latency_ci_ms.get("p99", (0.0, 0.0))[0]
    return lo > s.objective_ms


def confident_bounds(steps: list[StepResult]) -> tuple[float, float | None]:
    """The interval on the max sustainable rate (see the module docstring)."""
    ok = [s.rate for s in steps if _surely_ok(s)]
    bad = [s.rate for s in steps if _surely_bad(s)]
    best = max((s.rate for s in steps if s.sustainable), default=0.0)
    low = min(max(ok, default=0.0), best)
    above = [r for r in bad if r > low]
    return low, (min(above) if above else None)


def search_max_rate(
    step: Callable[[float], StepResult],
    start: float,
    settings: SearchSettings = SearchSettings(),
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RateSearch:
    """Find the highest rate ``step(rate)`` judges sustainable (see the module docstring).

    ``deadline`` (on ``clock``): no step starts unless the median step so far still fits before it.
    """
    out = RateSearch()
    durations: list[float] = []
    lo: float | None = None  # highest sustainable rate
    hi: float | None = None  # lowest unsustainable rate
    rate = max(start, settings.min_rate)
    rechecks = settings.recheck
    checking = False  # this step re-measures the failing end of the bracket

    def fits() -> bool:
        if deadline is None or not durations:
            return deadline is None or clock() < deadline
        return clock() + statistics.median(durations) <= deadline

    while True:
        if len(out.steps) >= settings.max_steps:
            out.stop_reason = f"{settings.max_steps} steps"
            break
        if not fits():
            out.stop_reason = "time budget"
            break
        t = clock()
        s = step(rate)
        durations.append(clock() - t)
        out.steps.append(s)
        if checking and s.sustainable:
            lo, hi = rate, None  # the failure there was noise: climb on from it
        elif s.sustainable:
            if hi is None or rate < hi:
                lo = rate if lo is None else max(lo, rate)
        elif lo is None or rate > lo:
            hi = rate if hi is None else min(hi, rate)
        checking = False
        if lo is not None and hi is not None:
            if hi / lo - 1 <= settings.resolution:
                if rechecks > 0:
                    rechecks -= 1
                    checking, rate = True, hi
                    continue
                out.stop_reason = f"resolved within {settings.resolution:.0%}"
                break
            rate = math.sqrt(lo * hi)
        elif lo is not None:
            rate = lo * settings.factor
        else:
            assert hi is not None
            rate = hi / settings.factor
            if rate < settings.min_rate:
                out.stop_reason = f"no sustainable rate at or above {settings.min_rate:g}/s"
                break
    return out
