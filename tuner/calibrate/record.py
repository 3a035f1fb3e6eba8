"""The calibration's record: the kernels' constants, one score, a whole calibration and its stored form."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tuner import fmt
from tuner.errors import ProfileError, TunerError

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

PY_RUNNER = (
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
            text = f"{k} {fmt.sig(one.score)} {UNITS[k]}"
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
