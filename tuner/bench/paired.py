"""The side-by-side gate: the previous model and the current one, interleaved in one run, decided on
the paired differences (``tuner bench --baseline P --against SPEC``).

A stored baseline was measured on another day, often on another machine behind the same
fingerprint; :mod:`tuner.bench.hostspeed` adjusts for the host's speed, but the best comparison is
the one asv's ``continuous`` makes: both versions on one host in one run. Here the baseline
profile gives the configuration only; its stored figures are not compared.

**The pairs.** Trial A runs the previous model (``--against``), trial B the current one, on the
same inputs and the same configuration; pairs alternate their order (AB, BA, AB, ...), so a drift
of the host's speed over the run costs both sides alike. A pair is *clean* when neither trial was
contaminated (the noise guard, :mod:`tuner.hostload`). At least :data:`MIN_PAIRS` pairs are
measured, and more — up to :data:`MAX_PAIRS` — while the verdict is inconclusive or fewer than
:data:`MIN_PAIRS` pairs are clean.

**The change.** Each pair's ratio ``B/A`` (throughputs, medians of their windows); the change is
the geometric mean of the clean pairs' ratios minus one. Its 95% CI, on the log scale: the wider
of Student's t interval over the pairs' log ratios (how much the pairs disagree) and the pairs'
median within-pair interval (:func:`tuner.stats.ratio_ci` of the two trials' windows) shrunk by
√n — so a few pairs that happen to agree closely do not claim more than their windows can tell.

**The verdict**, with tolerance ``t``: **ok** when the CI's low end is within ``-t``;
**regression** when its high end is beyond ``-t`` (the change is clearly worse than the
tolerance: no stored figure or other host involved, so nothing else can explain it); else
**inconclusive**, saying the interval straddles the tolerance. Fewer than 2 clean pairs: the host
was busy — ok only when every pair is within the tolerance anyway, else inconclusive (never a
regression). A p99 rise is a regression only on a quiet host when it is beyond the tolerance in
every clean pair with the two trials' p99 intervals apart.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from tuner import fmt
from tuner.bench.gate import GATE_P99_SLACK_MS, P99_QUIET, Verdict
from tuner.bench.types import TrialResult
from tuner.stats import ratio_ci

__all__ = [
    "MAX_PAIRS",
    "MIN_PAIRS",
    "Pair",
    "PairedChange",
    "decide_paired",
    "paired_change",
    "want_another_pair",
]

#: pairs measured at least (and clean pairs wanted for a verdict on clean pairs only)
MIN_PAIRS = 3
#: at most this many pairs: an inconclusive verdict or a contaminated pair asks for another
MAX_PAIRS = 6
#: Student's t, two-sided 95%, by degrees of freedom (the pairs minus one)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class Pair:
    """One A (the previous model) and one B (the current), measured back to back."""

    a: TrialResult
    b: TrialResult
    order: str  # "AB" or "BA": which ran first

    @property
    def measured(self) -> bool:
        return all(r.throughput > 0 and not r.error for r in (self.a, self.b))

    @property
    def clean(self) -> bool:
        return self.measured and not self.a.contaminated and not self.b.contaminated

    @property
    def ratio(self) -> float:
        return self.b.throughput / self.a.throughput

    def within(self) -> tuple[float, float]:
        """The 95% CI of B/A from the two trials' windows (the ratio itself when they have none)."""
        if self.a.windows and self.b.windows:
            lo, hi = ratio_ci(self.b.windows, self.a.windows)
            if math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi:
                return lo, hi
        return self.ratio, self.ratio

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "against": self.a.throughput,
            "current": self.b.throughput,
            "ratio": round(self.ratio, 4) if self.measured else None,
            "clean": self.clean,
        }


@dataclass(frozen=True)
class PairedChange:
    """The change of B over A, from pairs: its point, its 95% CI, in percent."""

    change_pct: float
    low_pct: float
    high_pct: float
    pairs: int

    @property
    def words(self) -> str:
        return f"{self.change_pct:+.1f}%, paired CI {self.low_pct:+.1f}% to {self.high_pct:+.1f}% over {self.pairs} pairs"


def paired_change(pairs: list[Pair]) -> PairedChange:
    """The change over ``pairs`` (each measured): see the module docstring."""
    if not pairs:
        raise ValueError("paired_change() needs at least one measured pair")
    logs = [math.log(p.ratio) for p in pairs]
    n = len(logs)
    mean = statistics.fmean(logs)
    between = _T95.get(n - 1, 1.96) * statistics.stdev(logs) / math.sqrt(n) if n > 1 else math.inf
    halves = []
    for p in pairs:
        lo, hi = p.within()
        halves.append(max(math.log(p.ratio / lo), math.log(hi / p.ratio)))
    within = statistics.median(halves) / math.sqrt(n)
    half = max(between, within) if n > 1 else within
    pct = lambda x: (math.exp(x) - 1) * 100  # noqa: E731
    return PairedChange(pct(mean), pct(mean - half), pct(mean + half), n)


def _kind(change: PairedChange, tolerance_pct: float) -> str:
    if change.low_pct >= -tolerance_pct:
        return "ok"
    if change.high_pct < -tolerance_pct:
        return "regression"
    return "inconclusive"


def want_another_pair(pairs: list[Pair], tolerance_pct: float) -> bool:
    """Whether to measure one more pair: fewer than MIN_PAIRS, or no verdict yet (too few clean
    pairs, or an interval straddling the tolerance) with room left under MAX_PAIRS."""
    if len(pairs) < MIN_PAIRS:
        return True
    if len(pairs) >= MAX_PAIRS:
        return False
    clean = [p for p in pairs if p.clean]
    if len(clean) < MIN_PAIRS:
        return True
    return _kind(paired_change(clean), tolerance_pct) == "inconclusive"


def _load(pairs: list[Pair]) -> float:
    loads = [r.outside.cpu for p in pairs for r in (p.a, p.b) if r.outside is not None]
    return statistics.fmean(loads) if loads else 0.0


def _p99_rise(pairs: list[Pair], tolerance_pct: float) -> tuple[float | None, bool]:
    """The median p99 change over the pairs, and whether it is beyond the tolerance in every pair
    with the two trials' p99 intervals apart."""
    rises, apart = [], []
    for p in pairs:
        a, b = p.a.latency_ms.get("p99"), p.b.latency_ms.get("p99")
        if not a or b is None:
            continue
        rises.append((b - a) / a * 100)
        a_hi = p.a.latency_ci_ms.get("p99", (a, a))[1]
        b_lo = p.b.latency_ci_ms.get("p99", (b, b))[0]
        apart.append(b_lo > a_hi * (1 + tolerance_pct / 100) + GATE_P99_SLACK_MS)
    if not rises:
        return None, False
    return statistics.median(rises), bool(apart) and all(apart)


def decide_paired(pairs: list[Pair], tolerance_pct: float, *, against: str, usable_cores: int) -> Verdict:
    """The side-by-side verdict on ``pairs`` (at least one measured): see the module docstring."""
    measured = [p for p in pairs if p.measured]
    if not measured:
        raise ValueError("decide_paired() needs at least one pair that measured a throughput on both sides")
    clean = [p for p in measured if p.clean]
    busy = len(clean) < 2
    basis = measured if busy else clean
    change = paired_change(basis)
    load = _load(basis)
    cores = fmt.plural(usable_cores, "core")
    tput_b = statistics.median(p.b.throughput for p in basis)
    tput_a = statistics.median(p.a.throughput for p in basis)
    dp, p99_apart = _p99_rise(basis, tolerance_pct)
    p99s = [p.b.latency_ms["p99"] for p in basis if "p99" in p.b.latency_ms]
    text = (
        f"side by side with {against}, {len(basis)} pairs: throughput {fmt.rate(tput_b)} vs "
        f"{fmt.rate(tput_a)} items/s ({change.words})"
    )
    if dp is not None:
        text += f", p99 {dp:+.0f}%"
    kind = _kind(change, tolerance_pct)
    p99_real = dp is not None and p99_apart and load < P99_QUIET and not busy
    if p99_real and kind == "ok":
        kind = "regression"
    message = ""
    if busy and kind != "ok":
        kind = "inconclusive"
        why = (
            f"host busy — {len(measured) - len(clean)} of {len(measured)} pairs could not get clean windows "
            f"(outside load {load:.0%} of {cores})"
        )
        text += f": not within {tolerance_pct:g}% — inconclusive: {why}"
        message = f"{why}; no verdict: re-run on a quiet host"
    elif kind == "ok":
        text += f": within {tolerance_pct:g}% — ok"
    elif kind == "regression":
        what = [f"throughput {change.change_pct:+.1f}%"] if change.high_pct < -tolerance_pct else []
        if p99_real:
            what.append(f"p99 rose {dp:.0f}% in every pair")
        text += f": beyond {tolerance_pct:g}% — REGRESSION"
        message = f"{', '.join(what)} against {against}, side by side (limit {tolerance_pct:g}%)"
    else:
        why = (
            f"the paired interval straddles -{tolerance_pct:g}% after {len(pairs)} pairs: the difference is "
            "within this host's noise"
        )
        text += f": inconclusive — {why}"
        message = f"{why}; no verdict: re-run on a quieter host"
    return Verdict(
        kind=kind,
        line=text,
        message=message,
        throughput=tput_b,
        p99_ms=statistics.median(p99s) if p99s else None,
        throughput_change_pct=change.change_pct,
        p99_change_pct=dp,
        outside=load,
        busy=busy,
        trials=2 * len(measured),
        clean_trials=sum(not r.contaminated for p in measured for r in (p.a, p.b)),
        windows=sum(len(r.windows) for p in measured for r in (p.a, p.b)),
        windows_discarded=sum(len(r.discarded_windows) for p in measured for r in (p.a, p.b)),
        same_host=True,
        side_by_side={
            "against": against,
            "change_pct": round(change.change_pct, 2),
            "ci_pct": [round(change.low_pct, 2), round(change.high_pct, 2)],
            "pairs": [p.to_json() for p in pairs],
        },
    )
