"""Two hosts compared: the speed ratio of each kernel with its CI, and the words for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tuner.calibrate.record import (
    KERNELS,
    MODES,
    REPRODUCIBILITY,
    Calibration,
    KernelScore,
)
from tuner.stats import median

# ------------------------------------------------------------------------------- two hosts


@dataclass(frozen=True)
class SpeedRatio:
    """This host's speed over the baseline's on one kernel in one mode (current / baseline),
    with a 95% CI; ``kernel`` "reference" is the envelope of several kernels."""

    kernel: str
    mode: str
    ratio: float
    low: float
    high: float

    @property
    def differs(self) -> bool:
        """The hosts differ beyond the CIs: the interval excludes 1."""
        return self.low > 1.0 or self.high < 1.0

    def words(self) -> str:
        """``27% slower`` / ``4% faster`` / ``as fast``."""
        return _speed_words(self.ratio)

    def ci_words(self) -> str:
        """``24–30% slower`` / ``3% slower to 2% faster``."""
        lo, hi = self.low, self.high
        if hi < 1.0:
            return f"{(1 - hi) * 100:.0f}–{(1 - lo) * 100:.0f}% slower"
        if lo > 1.0:
            return f"{(lo - 1) * 100:.0f}–{(hi - 1) * 100:.0f}% faster"
        return f"{(1 - lo) * 100:.0f}% slower to {(hi - 1) * 100:.0f}% faster"

    def to_dict(self) -> dict[str, Any]:
        """``{kernel, mode, ratio, ci: [low, high], differs}``."""
        return {
            "kernel": self.kernel,
            "mode": self.mode,
            "ratio": round(self.ratio, 4),
            "ci": [round(self.low, 4), round(self.high, 4)],
            "differs": self.differs,
        }


def _speed_words(r: float) -> str:
    pct = round(abs(1 - r) * 100)
    if pct == 0:
        return "as fast"
    return f"{pct}% slower" if r < 1 else f"{pct}% faster"


@dataclass(frozen=True)
class HostSpeed:
    """Two calibrations compared (:func:`compare`): a ratio per kernel and mode that both measured
    cleanly, and in words what could not be compared."""

    ratios: tuple[SpeedRatio, ...]
    problems: tuple[str, ...] = ()  # pairs left out, and why ("blas all: this host's was busy")
    cores: tuple[int, int] = (0, 0)  # (baseline's, this host's)

    def get(self, kernel: str, mode: str) -> SpeedRatio | None:
        """The ratio of ``kernel`` in ``mode``; None when it could not be compared."""
        return next((r for r in self.ratios if r.kernel == kernel and r.mode == mode), None)

    def kernels(self, mode: str) -> list[SpeedRatio]:
        """Every kernel's ratio in ``mode``, in KERNELS order."""
        return [r for k in KERNELS if (r := self.get(k, mode)) is not None]

    def agree(self, mode: str) -> bool:
        """Whether the kernels' intervals in ``mode`` share a point (they agree within their CIs)."""
        rs = self.kernels(mode)
        return bool(rs) and max(r.low for r in rs) <= min(r.high for r in rs)

    def envelope(self, mode: str) -> SpeedRatio | None:
        """One ratio for "some kernel of these": the median of the kernels' ratios, and the
        interval from the lowest low to the highest high (if the model's speed follows one kernel,
        not knowing which, its ratio is inside). None when no kernel compared in ``mode``."""
        rs = self.kernels(mode)
        if not rs:
            return None
        return SpeedRatio(
            "reference", mode, median([r.ratio for r in rs]), min(r.low for r in rs), max(r.high for r in rs)
        )

    @property
    def differs(self) -> bool:
        """Some kernel, in some mode, differs beyond the CIs."""
        return any(r.differs for r in self.ratios)

    def problem_words(self) -> str:
        """What could not be compared, one reason once: ``every kernel: this host's calibration was busy``."""
        return _grouped(self.problems)

    def describe(self, ratio: SpeedRatio | None = None) -> str:
        """``this host runs the reference kernels 27% slower than the baseline's (calibration CI
        24–30% slower; python kernel, 2 cores)`` — of ``ratio``, or of the envelope (all cores when
        compared there, else one core)."""
        r = ratio or self.envelope("all") or self.envelope("single")
        if r is None:
            return f"the host calibrations could not be compared ({self.problem_words()})"
        cores = "1 core" if r.mode == "single" else f"{self.cores[1]} cores"
        if r.kernel == "reference":
            each = ", ".join(f"{k.kernel} {k.words()}" for k in self.kernels(r.mode))
            which = f"{each}; {cores}"
        else:
            which = f"{r.kernel} kernel, {cores}"
        speed = "as fast as" if r.words() == "as fast" else f"{r.words()} than"
        return f"this host runs the reference kernels {speed} the baseline's (calibration CI {r.ci_words()}; {which})"

    def to_dict(self) -> dict[str, Any]:
        """``{ratios: [...], problems: [...], differs}`` for the gate's JSON."""
        return {
            "ratios": [r.to_dict() for r in self.ratios],
            "problems": list(self.problems),
            "differs": self.differs,
        }


def _grouped(problems: tuple[str, ...]) -> str:
    """``python single, blas all: this host's calibration was busy; ...`` — one reason once."""
    by: dict[str, list[str]] = {}
    for p in problems:
        what, _, why = p.partition(": ")
        by.setdefault(why or what, []).append(what if why else "")
    parts = []
    for why, whats in by.items():
        named = [w for w in whats if w]
        if len(named) == len(KERNELS) * len(MODES):
            named = ["every kernel"]
        parts.append(f"{', '.join(named)}: {why}" if named else why)
    return "; ".join(parts)


def _log_widths(kernel: str, s: KernelScore) -> tuple[float, float]:
    """A score's CI as log half-widths below and above it, each at least the kernel's
    REPRODUCIBILITY; above, also what its reps' outside load may have cost (a share s of the
    cores busy elsewhere: up to s of the score)."""
    floor = math.log1p(REPRODUCIBILITY.get(kernel, max(REPRODUCIBILITY.values())))
    load = -math.log1p(-min(max(s.outside, 0.0), 0.9))
    return (
        max(floor, math.log(s.score / s.ci[0]) if s.ci[0] > 0 else floor),
        max(floor, load, math.log(s.ci[1] / s.score) if s.ci[1] > 0 else floor),
    )


def _ratio(kernel: str, mode: str, base: KernelScore, cur: KernelScore) -> SpeedRatio:
    """current / baseline; its CI by adding the two scores' log half-widths in quadrature (below:
    this host's low side with the baseline's high side; above: the other two)."""
    b_down, b_up = _log_widths(kernel, base)
    c_down, c_up = _log_widths(kernel, cur)
    r = cur.score / base.score
    return SpeedRatio(
        kernel,
        mode,
        r,
        r * math.exp(-math.hypot(c_down, b_up)),
        r * math.exp(math.hypot(c_up, b_down)),
    )


def compare(baseline: Calibration, current: Calibration) -> HostSpeed:
    """This host's speed over the baseline's, per kernel and mode, with 95% CIs.

    **The CI of a ratio.** Each score's CI is read as log half-widths below and above the score,
    each at least its kernel's :data:`REPRODUCIBILITY` (what a score moves between runs on one host, beyond its
    own CI), the upper one also at least what the outside load of its clean reps may have cost it
    (a share *s* of the cores busy elsewhere: the score may read low by up to *s*, the gate's own
    reading of outside load); the ratio's half-widths are those of the two scores added in
    quadrature. Why: the two
    calibrations are independent measurements (other host, other day), so their errors add like
    independent errors — the interval arithmetic of the two CIs (low/high against high/low) would
    be the case of both at their worst ends at once, a ~99.8% interval, and would leave the gate
    inconclusive on ordinary noise; a bootstrap of the ratio would need every rep of both runs,
    which the profile does not keep (it keeps the score and its CI). Logs: speed ratios are
    multiplicative, and a CI of a score is asymmetric in general.

    Left out, and said in ``problems``: a different kernels' version (nothing compares then), a
    pair either side did not measure, "all" scores of hosts with different usable cores (they
    measure different amounts of hardware), and a pair either side measured busy (it reads low).
    """
    if baseline.version != current.version:
        why = f"calibration version {baseline.version} vs {current.version}: the kernels differ"
        return HostSpeed((), (why,), (baseline.cores, current.cores))
    ratios: list[SpeedRatio] = []
    problems: list[str] = []
    for k in KERNELS:
        for m in MODES:
            b, c = baseline.score(k, m), current.score(k, m)
            if b is None or c is None:
                if (b is None) != (c is None):
                    problems.append(
                        f"{k} {m}: measured on {'this host' if b is None else 'the baseline'} only"
                    )
                continue
            if m == "all" and baseline.cores != current.cores:
                problems.append(f"{k} all: {baseline.cores} cores vs {current.cores}")
                continue
            if b.busy or c.busy:
                who = " and ".join(w for w, s in (("the baseline's", b), ("this host's", c)) if s.busy)
                problems.append(f"{k} {m}: {who} calibration was busy")
                continue
            ratios.append(_ratio(k, m, b, c))
    return HostSpeed(tuple(ratios), tuple(problems), (baseline.cores, current.cores))
