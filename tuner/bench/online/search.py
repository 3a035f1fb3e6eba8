"""The highest sustainable rate of one candidate: geometric steps up, then bisection, within a budget.

::

    r = start ──► step(r) ── sustainable ──► r × factor … until a step fails   (or down by ÷factor
                                                                               until one holds)
    bracket [highest sustainable, lowest unsustainable] ──► step(√(lo·hi)) … until hi/lo − 1 <= resolution
                                                           or the budget cannot fit another step

The search only sees verdicts (:class:`~tuner.bench.online.step.StepResult.sustainable`), so it is a
pure function of a step callable and is tested on synthetic capacities. The bracket is recomputed
from the verdicts after every step — ``lo`` the highest rate that held, ``hi`` the lowest that failed
above it — and a rate measured twice counts by its *latest* verdict. One noisy verdict would
otherwise decide the result, both ways:

* **re-check** — a spurious failure (a stall of the shared host) would cap the search for good: once
  the bracket is resolved, its failing end, if measured once, is measured again (``recheck`` such
  steps at most); if it now holds, the climb resumes from it.
* **confirm** — a lucky step would be reported as the max (the winner's curse): then the holding end,
  if measured once, is measured again (``confirm`` such steps at most); if it now fails, the search
  goes on below it.

A real limit fails again and a real max holds again, which costs two steps.

**Down from a first step the generator could not keep** (``generator_behind``: one Python sender
submits some tens of thousands of requests a second, and a fast model's closed-loop rate is far
above that): the next rate is looked for under what the sender did send, not just ÷factor from the
schedule it missed — otherwise a few steps are spent halving from an impossible rate.

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
from typing import Any

from tuner.bench.online.results import StepResult
from tuner.deployment import Deployment

__all__ = [
    "CandidateResult",
    "RateSearch",
    "SearchSettings",
    "candidate_label",
    "confident_bounds",
    "engine_key",
    "latest",
    "search_max_rate",
]

#: the settings of a candidate (a deployment with a batching setting) an online record keeps
CANDIDATE_SETTINGS = ("backend", "workers", "threads_per_worker", "max_batch_size", "max_batch_delay_s")


@dataclass(frozen=True)
class SearchSettings:
    """How one rate search walks: where it starts, how it climbs, when it stops."""

    factor: float = 2.0  # geometric step while climbing (or descending)
    resolution: float = 0.05  # stop bisecting when hi/lo − 1 is at most this
    max_steps: int = 16
    min_rate: float = 1.0  # below this many requests/s there is nothing to serve: give up
    recheck: int = 1  # re-measures of a resolved bracket's failing end (each end at most once)
    confirm: int = 2  # re-measures of its holding end, the max found (each end at most once)


def latest(steps: list[StepResult]) -> list[StepResult]:
    """The last step at each rate (a rate measured again counts by its latest verdict)."""
    return list({s.rate: s for s in steps}.values())


@dataclass
class RateSearch:
    """What one search found: every step, the highest sustainable one, and the bracket."""

    steps: list[StepResult] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def best(self) -> StepResult | None:
        """The step at the highest rate whose latest verdict was sustainable (None: no such rate)."""
        ok = [s for s in latest(self.steps) if s.sustainable]
        return max(ok, key=lambda s: s.rate) if ok else None

    @property
    def max_rate(self) -> float:
        b = self.best
        return b.rate if b is not None else 0.0

    @property
    def bracket(self) -> tuple[float, float | None]:
        """(highest sustainable rate, lowest unsustainable rate above it, or None)."""
        lo = self.max_rate
        above = [_ceiling(s, lo) for s in latest(self.steps) if not s.sustainable and s.rate > lo]
        return lo, (min(above) if above else None)

    @property
    def max_rate_ci(self) -> tuple[float, float | None]:
        return confident_bounds(latest(self.steps))


def _ceiling(s: StepResult, lo: float) -> float:
    """Where a failed step bounds the search: its rate, or — when the generator could not keep its
    schedule — the rate the generator did send (if that is still above what held)."""
    if s.generator_behind and lo < s.offered < s.rate:
        return s.offered
    return s.rate


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
    ceiling: float | None = None,
) -> RateSearch:
    """Find the highest rate ``step(rate)`` judges sustainable (see the module docstring).

    ``deadline`` (on ``clock``): no step starts unless the median step so far still fits before it.
    ``ceiling``: no step offers more (the configuration's closed-loop throughput, high end of its
    CI, in requests/s): a sustainable step there ends the search — open loop never claims more than
    the configuration measured closed loop.
    """
    out = RateSearch()
    durations: list[float] = []
    rate = max(start, settings.min_rate)
    if ceiling is not None:
        rate = min(rate, max(ceiling, settings.min_rate))
    rechecks, confirms = settings.recheck, settings.confirm

    def times(r: float) -> int:
        return sum(1 for s in out.steps if s.rate == r)

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
        out.steps.append(step(rate))
        durations.append(clock() - t)
        lo, hi = out.bracket
        if out.best is None:
            # nothing held yet: under the lowest failure (or what the generator managed to send)
            hi = min(_ceiling(s, 0.0) for s in latest(out.steps))
            rate = hi / settings.factor
            if rate < settings.min_rate:
                out.stop_reason = f"no sustainable rate at or above {settings.min_rate:g}/s"
                break
        elif hi is None:
            rate = lo * settings.factor
        elif hi / lo - 1 > settings.resolution:
            rate = math.sqrt(lo * hi)
        elif rechecks > 0 and times(hi) == 1:
            rechecks, rate = rechecks - 1, hi  # a failure at the edge may have been the host
        elif confirms > 0 and times(lo) == 1:
            confirms, rate = confirms - 1, lo  # a pass at the edge may have been luck
        else:
            out.stop_reason = f"resolved within {settings.resolution:.0%}"
            break
        if ceiling is not None and rate > ceiling:
            if out.best is not None and out.best.rate >= ceiling * (1 - settings.resolution):
                out.stop_reason = "at the closed-loop throughput (the open-loop search offers no more)"
                break
            rate = ceiling
    return out


def candidate_label(c: Deployment) -> str:
    """``process ×2 · 1 thread · batch ≤64 · delay 5 ms``: a configuration with its batching."""
    return (
        f"{c.backend} ×{c.workers} · {c.threads_text()} · batch ≤{c.batch_size} "
        f"· delay {c.max_batch_delay_s * 1000:g} ms"
    )


def engine_key(c: Deployment) -> tuple[str, int, int | None]:
    """The pool a candidate runs on (backend, workers, threads), whatever its batching."""
    return (c.backend, c.workers, c.threads_per_worker)


@dataclass
class CandidateResult:
    """One candidate's search: its steps, the max rate at the objective and its interval.

    ``candidate`` is a deployment with its batching (``max_batch_size``, ``max_batch_delay_s``).
    """

    candidate: Deployment
    steps: list[StepResult] = field(default_factory=list)
    stop_reason: str = ""
    closed_loop_throughput: float = 0.0  # items/s of the configuration's closed-loop trial
    error: str | None = None

    @property
    def search(self) -> RateSearch:
        return RateSearch(self.steps, self.stop_reason)

    @property
    def max_rate(self) -> float:
        return self.search.max_rate

    @property
    def best(self) -> StepResult | None:
        return self.search.best

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.public(CANDIDATE_SETTINGS),
            "steps": [s.to_dict() for s in self.steps],
            "stop_reason": self.stop_reason,
            "closed_loop_throughput": self.closed_loop_throughput,
            "error": self.error,
            "max_rate": self.max_rate,
            "max_rate_ci": list(self.search.max_rate_ci),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateResult:
        return cls(
            candidate=Deployment.of(**d["candidate"]),
            steps=[StepResult.from_dict(s) for s in d.get("steps", [])],
            stop_reason=d.get("stop_reason", ""),
            closed_loop_throughput=d.get("closed_loop_throughput", 0.0),
            error=d.get("error"),
        )
