"""Host speed, measured: a short calibration of fixed reference kernels, and two hosts compared.

A fingerprint says which *kind* of machine this is; it cannot say how fast today's machine is. A
VM's CPU reads "AMD EPYC" whatever physical machine is behind it, and one instance type runs on
different hardware from day to day (issue 23: an unchanged build read −28% on a quiet host with the
profile's own fingerprint). So every sweep and every gate first measures the host on fixed work,
and the profile records the result beside the fingerprint (``host.calibration``).

**The kernels** — the same fixed work on every host, each *single* (one runner) and on *all*
usable cores (one runner per core):

=========  ==========  ======================================================================
kernel     unit        the work (one rep = ``units`` of it per runner)
=========  ==========  ======================================================================
python     Mloop/s     a pure-Python loop of integer arithmetic, a dict, str formatting — what
                       an interpreter-bound model does; one unit = 1000 iterations. Runs in
                       child interpreters (``python -I -S``): the GIL lets one thread run Python
                       at a time, so all cores need processes. Single mode runs in one of them
                       too, so both modes run the same interpreter in the same way.
blas       GFLOP/s     a float32 matmul of 384×384 matrices (float32: what ML models multiply;
                       384: ~1 ms, inside the L2/L3 caches, so it measures the cores' arithmetic),
                       BLAS limited to 1 thread per call (threadpoolctl), one Python thread per
                       runner (numpy releases the GIL inside BLAS).
memory     GB/s        ``numpy.copyto`` of a fixed 32 MiB float64 array into another (bytes read
                       + bytes written per second), a pair per runner, threads as for blas. 64 MiB
                       per runner is beyond the per-core share of the last-level cache of the
                       common cloud CPUs (an EPYC CCX has 32 MB); a host that reports a larger
                       shared L3 (the 2-core dev VM says 480 MB) measures a mix of cache and DRAM
                       — the size is fixed anyway, so two hosts always do the *same* work.
=========  ==========  ======================================================================

**The budget** (default 5 s, the whole call). Setup first: the python runners start (6-25 ms for
two, concurrently: ``-I -S`` skips site and every import) and the memory arrays are touched
(first-touch page faults: ~0.05 s for 128 MiB on a warm host, up to ~0.5 s on a fresh VM whose
memory the hypervisor backs lazily). Then each kernel × mode pair sizes its rep to :data:`REP_S`
(the sizing reps are its warm-up and are not counted; the rep is shorter when the budget cannot
give every pair :data:`MIN_REPS` + 2 of them), and the reps run **round-robin** over the pairs —
one rep of each pair in turn — until every pair is stable (at least :data:`MIN_REPS` clean reps,
the last :data:`STABLE_REPS` within :data:`STABLE_TOLERANCE`) or the next rep would pass the budget
less :data:`RESERVE_S`. Round-robin, because on a shared VM a core's speed drifts over seconds:
every pair samples the whole calibration, so a drift moves all kernels alike and shows in their
CIs instead of passing for one kernel's speed against another's. A pair that settles early
leaves its turns to the others.

**The noise guard.** Each rep is one window of :mod:`tuner.hostload` (outside CPU, steal, swap;
the runners count as tuner's own): a rep the rule calls busy is discarded and counted. A pair with
fewer than :data:`MIN_CLEAN` clean reps keeps every rep, and a pair with no more clean reps than
busy ones keeps its clean ones; both are marked ``busy`` — the host was busy throughout, the score
may read low, and :func:`compare` will not use it.

**The score** of a pair: work per second, the median of its clean reps, with a percentile-bootstrap
95% CI of that median (:func:`tuner.stats.bootstrap_ci`). With 5-8 reps that CI is close to the
reps' range. Between calibrations minutes apart on one host the scores move by more than one run's
CI (frequency, neighbours, SMT siblings, none of which the noise guard can read):
:func:`compare` counts each score as uncertain by at least its kernel's :data:`REPRODUCIBILITY`.

**Processes.** The python runners never outlive :func:`calibrate`: they are closed in a
``finally`` (stdin closed, then killed after :data:`STOP_GRACE_S`), on an exception or Ctrl-C
too; they ignore SIGINT (the caller handles Ctrl-C and stops them), and if the caller dies
outright their stdin reaches EOF and they exit on their own.

**Stored form** (:meth:`Calibration.to_dict`, the profile's ``host.calibration``)::

    version: 1                  # kernels' definition; scores of different versions never compare
    cores: 2                    # runners in "all" mode (the usable cores)
    budget_s: 5.0               # what the calibration was allowed
    elapsed_s: 4.93             # what it took, setup included
    start_s: 0.023              # starting the python runner processes (all, concurrently)
    setup_s: 0.057              # all setup: runners started, arrays touched, sampler ready
    outside_load: 0.27          # mean outside load over every rep (share of the usable cores)
    outside_load_max: 0.62      # the busiest rep
    kernels:
      python:
        unit: Mloop/s           # the kernel's unit (for people; fixed by the version)
        # score: median of the clean reps; ci: its bootstrap 95% CI; reps: clean reps;
        # discarded: reps the noise guard called busy; stable: the last 3 clean reps within 2%;
        # busy: too few clean reps (< 3) or no more clean than busy — not compared;
        # outside: mean outside load over the clean reps (it may have cost the score that share)
        single: {score: 4.42, ci: [4.309, 4.562], reps: 4, discarded: 3, stable: true, busy: false,
                 outside: 0.06}
        all: {...}              # null on a 1-core host (it would be single again)
      blas: {unit: GFLOP/s, single: {...}, all: {...}}
      memory: {unit: GB/s, single: {...}, all: {...}}

Importing this module costs the standard library only (numpy, psutil and threadpoolctl are
imported inside :func:`calibrate`), so the profile schema can read a calibration cheaply.
"""

from __future__ import annotations

import math
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import ConfigError, ProfileError, TunerError
from tuner.hostload import DEFAULT_MAX_OUTSIDE
from tuner.stats import bootstrap_ci, is_stable, median

__all__ = [
    "DEFAULT_BUDGET_S",
    "KERNELS",
    "KERNELS_VERSION",
    "MODES",
    "REPRODUCIBILITY",
    "UNITS",
    "Calibration",
    "CalibrationError",
    "HostSpeed",
    "KernelScore",
    "SpeedRatio",
    "calibrate",
    "compare",
]

#: The kernels' definition. Bump it when any kernel's work changes: scores then stop comparing.
KERNELS_VERSION = 1
KERNELS = ("python", "blas", "memory")
MODES = ("single", "all")
UNITS = {"python": "Mloop/s", "blas": "GFLOP/s", "memory": "GB/s"}
DEFAULT_BUDGET_S = 5.0
#: below this a calibration cannot give each of its 6 pairs a few stable reps
MIN_BUDGET_S = 1.0
#: the target length of one rep (one noise-guard window): shorter reps would make the guard's
#: tick-granular CPU counters noisy (10 ms ticks), longer ones would leave too few reps per pair
REP_S = 0.1
#: clean reps a pair needs before stability may end it; the last STABLE_REPS within the tolerance
MIN_REPS = 5
STABLE_REPS = 3
STABLE_TOLERANCE = 0.02
#: fewer clean reps than this: the pair keeps every rep and is marked busy
MIN_CLEAN = 3
#: kept back from the budget for closing the runners and computing the CIs
RESERVE_S = 0.05
#: a rep stops after the unit that passes this many times its target length (a stalled host)
REP_LIMIT = 5.0
#: a closed runner that has not exited after this long is killed
STOP_GRACE_S = 1.0
#: how long the runners may take to start, and a rep beyond its expected time, before giving up
START_TIMEOUT_S = 10.0
#: Between two calibrations of one host a score moves by more than either run's own bootstrap CI:
#: each score counts as uncertain by at least this much (relative, 95%) when two calibrations are
#: compared, per kernel. From tests/benchmarks/calibration.py on the shared 2-core dev VM, 8 quiet
#: calibrations in a row: python moved by ±2.5% (p95 of |ratio - 1| between two runs 4.9%: a floor
#: of 3.4% per score), blas and memory by 3-6% between most runs but by 20-43% on all cores in the
#: first calibration of a fresh process and in one with 10% outside load — those floors cover the
#: common case, the outside-load widening and the verdict's own guard (a regression the host
#: adjustment alone makes is inconclusive, tuner.bench.hostspeed) the rest.
REPRODUCIBILITY = {"python": 0.04, "blas": 0.08, "memory": 0.10}

BLAS_N = 384
MEMORY_MIB = 32
PY_LOOPS_PER_UNIT = 1000

# The python kernel, run by every runner process. Kept as source so that the children run exactly
# this text (they import nothing, not even tuner: ``-I -S`` starts in ~6 ms).
_PY_KERNEL = """
def kernel():
    # One unit of interpreter-bound work: int arithmetic, a dict, a str, a call; deterministic.
    h = 0x2545F491
    d = {}
    for i in range(LOOPS_PER_UNIT):
        h = (h * 1103515245 + 12345 + i) & 0xFFFFFFFF
        k = h & 1023
        d[k] = d.get(k, 0) + 1
        if not i & 15:
            s = hex(h)
            h ^= len(s.upper()) + ord(s[0])
    return h ^ len(d)
""".replace("LOOPS_PER_UNIT", str(PY_LOOPS_PER_UNIT))

_PY_RUNNER = (
    _PY_KERNEL
    + """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
out = sys.stdout
out.write("ready\\n")
out.flush()
for line in sys.stdin:  # "UNITS LIMIT_S"; EOF (parent closed us, or died): exit
    units, limit = line.split()
    units, limit, done = int(units), float(limit), 0
    t0 = time.perf_counter()
    while done < units:
        kernel()
        done += 1
        if time.perf_counter() - t0 > limit:  # the host stalled: stop at the rep's limit
            break
    out.write(str(done) + "\\n")
    out.flush()
"""
)


class CalibrationError(TunerError):
    """The calibration could not run (a runner process failed to start or died)."""


# ------------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class KernelScore:
    """One kernel in one mode: work per second and how it was measured."""

    score: float  # work per second (UNITS), median of the clean reps
    ci: tuple[float, float]  # bootstrap 95% CI of that median
    reps: int  # clean reps (the score is over them; over every rep when fewer than MIN_CLEAN)
    discarded: int  # reps the noise guard called busy
    stable: bool  # the last STABLE_REPS clean reps agreed within STABLE_TOLERANCE
    # fewer than MIN_CLEAN clean reps (the score then includes the busy ones), or no more clean reps
    # than busy ones: the host was busy throughout, the score may read low and is not compared
    busy: bool = False
    # mean outside load over the clean reps (share of the usable cores): it may have cost the
    # score up to that share, as the gate reads outside load (compare() widens the CI by it)
    outside: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{score, ci, reps, discarded, stable, busy, outside}`` (see the module docstring)."""
        return {
            "score": _sig(self.score),
            "ci": [_sig(self.ci[0]), _sig(self.ci[1])],
            "reps": self.reps,
            "discarded": self.discarded,
            "stable": self.stable,
            "busy": self.busy,
            "outside": round(self.outside, 3),
        }


@dataclass(frozen=True)
class Calibration:
    """This host's speed on the reference kernels (see the module docstring for the fields)."""

    scores: Mapping[str, Mapping[str, KernelScore | None]]  # kernel -> mode -> score
    cores: int
    budget_s: float
    elapsed_s: float
    start_s: float = 0.0
    setup_s: float = 0.0
    outside_load: float = 0.0
    outside_load_max: float = 0.0
    version: int = KERNELS_VERSION

    def score(self, kernel: str, mode: str) -> KernelScore | None:
        """The score of ``kernel`` in ``mode``; None when it was not measured."""
        return self.scores.get(kernel, {}).get(mode)

    @property
    def reps(self) -> int:
        """Reps over every kernel and mode, discarded ones included."""
        return sum(s.reps + s.discarded for s in self._all())

    @property
    def discarded(self) -> int:
        """Reps the noise guard called busy."""
        return sum(s.discarded for s in self._all())

    def _all(self) -> Iterator[KernelScore]:
        for modes in self.scores.values():
            yield from (s for s in modes.values() if s is not None)

    def describe(self) -> str:
        """``calibration 3.9 s of 5 s: python 7.1 Mloop/s (×1.9 on 2 cores) · ...`` — one line."""
        parts = []
        for k in KERNELS:
            one, every = self.score(k, "single"), self.score(k, "all")
            if one is None:
                continue
            text = f"{k} {_fmt(one.score)} {UNITS[k]}"
            if every is not None:
                text += f" (×{every.score / one.score:.2f} on {self.cores} cores)"
            if one.busy or (every is not None and every.busy):
                text += " BUSY"
            parts.append(text)
        busy = f"; {self.discarded} of {self.reps} reps busy (discarded)" if self.discarded else ""
        return (
            f"calibration {self.elapsed_s:.1f} s of {self.budget_s:g} s: {' · '.join(parts)}"
            f"{busy}; outside load {self.outside_load:.0%}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The plain, JSON-able record stored under ``host.calibration`` (module docstring)."""
        kernels: dict[str, Any] = {}
        for k in KERNELS:
            if k not in self.scores:
                continue
            entry: dict[str, Any] = {"unit": UNITS[k]}
            for m in MODES:
                s = self.scores[k].get(m)
                entry[m] = s.to_dict() if s is not None else None
            kernels[k] = entry
        return {
            "version": self.version,
            "cores": self.cores,
            "budget_s": round(self.budget_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "start_s": round(self.start_s, 4),
            "setup_s": round(self.setup_s, 4),
            "outside_load": round(self.outside_load, 3),
            "outside_load_max": round(self.outside_load_max, 3),
            "kernels": kernels,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "host.calibration") -> Calibration:
        """Read :meth:`to_dict` output back. Raises :class:`ProfileError` naming the first bad
        field (``host.calibration.kernels.blas.all.ci: ...``); ``where`` prefixes that name."""
        _need(isinstance(d, Mapping), where, "must be a mapping", d)
        version = _int(d, "version", where, low=1)
        cores = _int(d, "cores", where, low=1)
        kernels = d.get("kernels")
        _need(isinstance(kernels, Mapping), f"{where}.kernels", "must be a mapping", kernels)
        scores: dict[str, dict[str, KernelScore | None]] = {}
        for name, entry in kernels.items():
            path = f"{where}.kernels.{name}"
            # A later version may add kernels; this one reads the ones it knows.
            if version == KERNELS_VERSION and name not in KERNELS:
                raise ProfileError(f"{path}: unknown kernel (known: {', '.join(KERNELS)})")
            _need(isinstance(entry, Mapping), path, "must be a mapping", entry)
            scores[str(name)] = {m: _score(entry.get(m), f"{path}.{m}") for m in MODES}
        return cls(
            scores=scores,
            cores=cores,
            budget_s=_num(d, "budget_s", where),
            elapsed_s=_num(d, "elapsed_s", where),
            start_s=_num(d, "start_s", where, default=0.0),
            setup_s=_num(d, "setup_s", where, default=0.0),
            outside_load=_num(d, "outside_load", where, default=0.0),
            outside_load_max=_num(d, "outside_load_max", where, default=0.0),
            version=version,
        )


def _sig(x: float) -> float:
    """4 significant digits: the scores move by more than that between runs."""
    if not x or not math.isfinite(x):
        return x
    return round(x, 3 - math.floor(math.log10(abs(x))))


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _need(ok: bool, path: str, what: str, got: Any) -> None:
    if not ok:
        raise ProfileError(f"{path}: {what} (got {got!r})"[:300])


def _num(d: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    v = d.get(key, default)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    _need(ok, f"{where}.{key}", "must be a number >= 0", v)
    return float(v)


def _int(d: Mapping[str, Any], key: str, where: str, low: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ProfileError(f"{where}.{key}: must be an integer >= {low} (got {v!r})"[:300])
    return v


def _score(d: Any, path: str) -> KernelScore | None:
    if d is None:
        return None
    _need(isinstance(d, Mapping), path, "must be a mapping or null", d)
    score = _num(d, "score", path)
    _need(score > 0, f"{path}.score", "must be > 0", score)
    ci = d.get("ci")
    ok = (
        isinstance(ci, (list, tuple))
        and len(ci) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in ci)
        and 0 < ci[0] <= ci[1]
    )
    _need(ok, f"{path}.ci", "must be [low, high] with 0 < low <= high", ci)
    for flag in ("stable", "busy"):
        _need(isinstance(d.get(flag, False), bool), f"{path}.{flag}", "must be true or false", d.get(flag))
    return KernelScore(
        score=score,
        ci=(float(ci[0]), float(ci[1])),
        reps=_int(d, "reps", path, low=0),
        discarded=_int(d, "discarded", path, low=0),
        stable=bool(d.get("stable", False)),
        busy=bool(d.get("busy", False)),
        outside=_num(d, "outside", path, default=0.0),
    )


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

    def describe(self, ratio: SpeedRatio | None = None) -> str:
        """``this host runs the reference kernels 27% slower than the baseline's (calibration CI
        24–30% slower; python kernel, 2 cores)`` — of ``ratio``, or of the envelope (all cores when
        compared there, else one core)."""
        r = ratio or self.envelope("all") or self.envelope("single")
        if r is None:
            return "the host calibrations could not be compared (" + "; ".join(self.problems) + ")"
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


# ------------------------------------------------------------------------------- measuring


class _PythonRunners:
    """``n`` child interpreters running the python kernel on request (one line in, one line out)."""

    def __init__(self, n: int) -> None:
        if not sys.executable:
            raise CalibrationError("calibration: no Python executable to start the python kernel with")
        self._replies: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        t0 = time.perf_counter()
        try:
            for i in range(n):
                p = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _PY_RUNNER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                )
                self.procs.append(p)
                # One reader thread per child: a portable read with a timeout (select() does not
                # take pipes on Windows). The thread only blocks on the pipe; it ends at EOF.
                r = threading.Thread(target=self._read, args=(i, p), daemon=True, name=f"calibrate-read-{i}")
                r.start()
                self._readers.append(r)
            self._collect(range(n), time.perf_counter() + START_TIMEOUT_S, "start")
        except BaseException:
            self.close()
            raise
        self.start_s = time.perf_counter() - t0

    def _read(self, i: int, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            self._replies.put((i, line))
        self._replies.put((i, None))

    def _collect(self, which: range, deadline: float, what: str) -> list[str]:
        waiting = set(which)
        got: list[str] = []
        while waiting:
            try:
                i, line = self._replies.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise CalibrationError(
                    f"calibration: python runner did not {what} in time ({len(waiting)} of {len(which)} silent)"
                ) from None
            if line is None:
                raise CalibrationError(f"calibration: python runner {self._why(i)}")
            waiting.discard(i)
            got.append(line)
        return got

    def _why(self, i: int) -> str:
        p = self.procs[i]
        try:
            p.wait(timeout=STOP_GRACE_S)
            err = (p.stderr.read() if p.stderr else "").strip().splitlines()
        except (subprocess.TimeoutExpired, OSError, ValueError):
            err = []
        return f"exited with code {p.returncode}" + (f": {err[-1]}" if err else "")

    def rep(self, units: int, runners: int, limit_s: float) -> tuple[int, float]:
        """The first ``runners`` children each run ``units`` (stopping after the unit that passes
        ``limit_s``): (units done in all, wall seconds until the last one is done)."""
        t0 = time.perf_counter()
        for i, p in enumerate(self.procs[:runners]):
            assert p.stdin is not None
            try:
                p.stdin.write(f"{units} {limit_s:.6f}\n")
                p.stdin.flush()
            except OSError:  # it died: its pipe is broken (the reader may not have seen EOF yet)
                raise CalibrationError(f"calibration: python runner {self._why(i)}") from None
        done = self._collect(range(runners), t0 + limit_s + START_TIMEOUT_S, "finish a rep")
        return sum(int(d) for d in done), time.perf_counter() - t0

    def close(self) -> None:
        """Stop every child (EOF, then SIGKILL after STOP_GRACE_S) and reap it."""
        for p in self.procs:
            try:
                if p.stdin is not None:
                    p.stdin.close()
            except OSError:  # a child that died already: its pipe is broken
                pass
        deadline = time.perf_counter() + STOP_GRACE_S
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for r in self._readers:
            r.join(timeout=STOP_GRACE_S)
        for p in self.procs:
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()


@dataclass
class _Kit:
    """What the kernels run on: the python runners, the arrays, the thread pool, the noise guard."""

    cores: int
    sampler: Any  # tuner.hostload.HostSampler
    rule: Any  # tuner.hostload.Rule
    runners: _PythonRunners | None = None
    matrices: list[tuple[Any, Any]] = field(default_factory=list)
    arrays: list[tuple[Any, Any]] = field(default_factory=list)
    pool: Any = None  # concurrent.futures.ThreadPoolExecutor, for the all-cores numpy kernels
    deadline: float = math.inf  # perf_counter() by which the last rep must be over
    outside: list[tuple[float, float]] = field(default_factory=list)  # (span, outside) per rep


#: a rep (rep(units, runners, limit_s)) -> (units done in all, wall seconds)
_Rep = Callable[[int, int, float], tuple[int, float]]


def _threaded(
    kit: _Kit, work: Callable[[int, int, float], int], units: int, runners: int, limit_s: float
) -> tuple[int, float]:
    """``work(runner, units, stop_at)`` on ``runners`` runners at once (the caller's thread when 1)."""
    t0 = time.perf_counter()
    stop = t0 + limit_s
    if runners == 1:
        done = work(0, units, stop)
    else:
        done = sum(f.result() for f in [kit.pool.submit(work, i, units, stop) for i in range(runners)])
    return done, time.perf_counter() - t0


def _kernel(kit: _Kit, name: str) -> tuple[_Rep, float]:
    """(the kernel's rep, work per unit in the kernel's UNITS). Every rep stops after the unit
    that passes its limit: a host that stalls cannot carry a rep (or the budget) away."""
    import numpy as np

    if name == "python":
        assert kit.runners is not None
        return kit.runners.rep, PY_LOOPS_PER_UNIT / 1e6

    if name == "blas":

        def matmul(i: int, units: int, stop: float) -> int:
            a, b = kit.matrices[i]
            for done in range(1, units + 1):
                np.matmul(a, b)
                if time.perf_counter() > stop:
                    return done
            return units

        return (lambda u, r, limit: _threaded(kit, matmul, u, r, limit)), 2 * BLAS_N**3 / 1e9

    def copy(i: int, units: int, stop: float) -> int:
        src, dst = kit.arrays[i]
        for done in range(1, units + 1):
            np.copyto(dst, src)
            if time.perf_counter() > stop:
                return done
        return units

    return (lambda u, r, limit: _threaded(kit, copy, u, r, limit)), 2 * MEMORY_MIB * 2**20 / 1e9


def _setup(kit: _Kit, memory_runners: int) -> None:
    import numpy as np

    rng = np.random.default_rng(23)
    for _ in range(kit.cores):
        a = rng.standard_normal((BLAS_N, BLAS_N), dtype=np.float32)
        kit.matrices.append((a, a.T.copy()))
    n = MEMORY_MIB * 2**20 // 8
    for _ in range(memory_runners):
        # ones(), not empty(): every page is touched now, in setup, not in the first reps
        kit.arrays.append((np.ones(n), np.ones(n)))


def _size(kit: _Kit, rep: _Rep, runners: int, target_s: float) -> int:
    """Units per runner for a rep of about ``target_s`` (the sizing reps warm the kernel up)."""
    units = 1
    while True:
        done, took = rep(units, runners, _limit(kit, target_s))
        if took >= min(0.02, target_s / 3) or units >= 1 << 20 or done < units * runners:
            break
        units *= 4 if took < 0.005 else 2
    return max(1, round(done / runners * target_s / max(took, 1e-6)))


def _limit(kit: _Kit, target_s: float) -> float:
    """How long a rep may run: REP_LIMIT times its target, and never past the deadline."""
    return max(0.0, min(REP_LIMIT * target_s, kit.deadline - time.perf_counter()))


@dataclass
class _Pair:
    """One kernel × mode while it is measured: its rep, its work unit and the reps so far."""

    kernel: str
    mode: str
    runners: int
    rep: _Rep
    per_unit: float  # work per unit, in the kernel's UNITS
    units: int = 1
    target_s: float = REP_S
    last_s: float = REP_S
    clean: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    clean_outside: list[float] = field(default_factory=list)  # outside load of each clean rep
    done: bool = False

    def run(self, kit: _Kit) -> None:
        """One rep inside one noise-guard window; a busy window's rep is kept apart."""
        a = kit.sampler.snapshot()
        done, wall = self.rep(self.units, self.runners, _limit(kit, self.target_s))
        b = kit.sampler.snapshot()
        iv = kit.sampler.interval(a, b)
        kit.outside.append((iv.span_s, iv.outside))
        score = done * self.per_unit / wall
        if kit.rule.verdict(iv, kit.cores):
            self.busy.append(score)
        else:
            self.clean.append(score)
            self.clean_outside.append(iv.outside)
        self.last_s = wall
        self.done = len(self.clean) >= MIN_REPS and is_stable(self.clean, STABLE_REPS, STABLE_TOLERANCE)

    def score(self) -> KernelScore:
        """The median of the clean reps and its bootstrap CI (every rep when too few are clean)."""
        few = len(self.clean) < MIN_CLEAN
        used = self.clean + self.busy if few else self.clean
        [(lo, hi)] = bootstrap_ci(used, None, (0.5,))
        return KernelScore(
            score=median(used),
            ci=(lo, hi),
            reps=len(self.clean),
            discarded=len(self.busy),
            stable=is_stable(self.clean, STABLE_REPS, STABLE_TOLERANCE),
            # As many busy reps as clean ones: the host was busy throughout, and the reps between
            # its bursts are not trusted either (seen: a python score at half speed from 3 "clean"
            # reps among 4 busy ones — caches, frequency and SMT siblings are not in the counters).
            busy=few or len(self.busy) >= len(self.clean),
            outside=sum(self.clean_outside) / len(self.clean_outside) if self.clean_outside else 0.0,
        )


def _rounds(kit: _Kit, pairs: list[_Pair], deadline: float) -> None:
    """Reps round-robin over the pairs until each is stable or the next rep would pass ``deadline``.

    Round-robin, not one pair after another: on a shared VM a core's speed drifts over seconds
    (turbo, the neighbours' load; seen: the blas kernel 145 → 95 GFLOP/s within 1.5 s). Measured
    in turn, every pair samples the whole calibration, so a drift moves all the kernels alike and
    shows in each one's CI — not as one kernel's speed against another's.
    """
    while True:
        todo = [p for p in pairs if not p.done]
        if not todo:
            return
        for p in todo:
            if time.perf_counter() + p.last_s > deadline and (p.clean or p.busy):
                return
            p.run(kit)


@contextmanager
def _kit(usable: int | None, max_outside: float | None) -> Iterator[_Kit]:
    """Everything the kernels need, torn down on the way out whatever happens (an exception,
    Ctrl-C): the runner processes are stopped and reaped, the thread pool joined, BLAS restored."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from tuner.hostload import HostSampler, Rule

    with ExitStack() as stack:
        sampler = HostSampler(usable_cores=usable)
        kit = _Kit(cores=sampler.usable_cores, sampler=sampler, rule=Rule(max_outside=max_outside))
        # One BLAS thread per call: the all-cores mode runs one call per runner thread.
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        kit.runners = _PythonRunners(kit.cores)
        stack.callback(kit.runners.close)
        for p in kit.runners.procs:
            sampler.add(p.pid)  # the runners' CPU is tuner's own, not outside load
        if kit.cores > 1:
            kit.pool = ThreadPoolExecutor(max_workers=kit.cores, thread_name_prefix="calibrate")
            stack.callback(kit.pool.shutdown, wait=True, cancel_futures=True)
        yield kit


def _memory_runners(cores: int) -> int:
    """Runners the memory kernel gets on all cores: every core, unless that would take more than a
    quarter of the available memory (then it does single only)."""
    import psutil

    per = 2 * MEMORY_MIB * 2**20
    return cores if cores * per * 4 <= psutil.virtual_memory().available else 1


def calibrate(
    host: Any = None, budget_s: float = DEFAULT_BUDGET_S, max_outside: float | None = DEFAULT_MAX_OUTSIDE
) -> Calibration:
    """Measure this host on the reference kernels within ``budget_s`` seconds (see the module
    docstring). ``host``: a :class:`tuner.hardware.Host` (its usable cores), or None to read them.
    ``max_outside``: the noise guard's outside-load limit, a share of the usable cores (None: no
    rep is ever discarded, as :class:`tuner.hostload.Rule` reads it).

    Raises :class:`ConfigError` for a budget below :data:`MIN_BUDGET_S`, :class:`CalibrationError`
    when a runner process cannot start or dies.
    """
    if not budget_s >= MIN_BUDGET_S:
        raise ConfigError(f"calibration budget must be at least {MIN_BUDGET_S:g} s (got {budget_s})")
    t0 = time.perf_counter()
    deadline = t0 + budget_s - RESERVE_S
    usable = int(host.usable_cores) if host is not None else None
    with _kit(usable, max_outside) as kit:
        assert kit.runners is not None
        kit.deadline = deadline
        cores = kit.cores
        mem_runners = _memory_runners(cores)
        _setup(kit, mem_runners)
        setup_s = time.perf_counter() - t0
        wanted = [
            (k, m)
            for k in KERNELS
            for m in MODES
            if m == "single" or (cores > 1 and (k != "memory" or mem_runners > 1))
        ]
        # Rep length: REP_S, or shorter when the budget cannot give every pair MIN_REPS + 1 of them.
        target = max(0.005, min(REP_S, (deadline - time.perf_counter()) / len(wanted) / (MIN_REPS + 2)))
        pairs = []
        for k, m in wanted:
            runners = 1 if m == "single" else cores
            rep, per_unit = _kernel(kit, k)
            units = _size(kit, rep, runners, target)
            pairs.append(_Pair(k, m, runners, rep, per_unit, units, target_s=target, last_s=target))
        _rounds(kit, pairs, deadline)
        scores: dict[str, dict[str, KernelScore | None]] = {k: dict.fromkeys(MODES) for k in KERNELS}
        for p in pairs:
            scores[p.kernel][p.mode] = p.score()
        start_s = kit.runners.start_s
    spans = kit.outside
    total = sum(s for s, _ in spans)
    return Calibration(
        scores=scores,
        cores=cores,
        budget_s=budget_s,
        elapsed_s=time.perf_counter() - t0,
        start_s=start_s,
        setup_s=setup_s,
        outside_load=sum(s * o for s, o in spans) / total if total > 0 else 0.0,
        outside_load_max=max((o for _, o in spans), default=0.0),
    )
