"""The host-adjusted verdict: judge a build on its throughput *relative to the host's speed*.

The gate compares a throughput measured today with one measured on another day, often on another
physical machine behind the same fingerprint. :mod:`tuner.calibrate` measures both hosts on fixed
reference kernels; this module decides which kernel speaks for the model (its **nature**, from the
sweep's own trials), and the verdict on the throughput once the host's speed is taken out.

**The model's nature** (:func:`model_nature`), from pairs of trials that differ in one knob only,
where the host had cores for the extra parallelism (workers × threads <= usable cores), the knob
at least doubled, and neither trial was contaminated or ran a fault plan. A step *scaled* when it
gained at least ×:data:`SCALED` with the CIs apart, and was *flat* at ×:data:`FLAT` or less:

* ``io`` — every trial's workers used under :data:`WAITING` of the cores their configuration
  could use: the model mostly waits; host speed does not set its throughput.
* ``blas`` — native code running in parallel: more threads per worker scaled; or a worker
  with 2+ threads kept at least :data:`MANY_CORES` cores busy; or the thread backend scaled
  (the GIL was released) — and no sign of a GIL. Read "native code that releases the GIL":
  the BLAS kernel stands in for any such code.
* ``python`` — GIL-bound: the thread backend with 2+ workers kept at most :data:`ONE_CORE` cores
  busy and did not scale, and the process backend did not stay flat (only processes can scale
  it). No sign of native parallelism.
* ``memory`` — the thread backend kept :data:`MANY_CORES`+ cores busy yet stayed flat (threads
  busy in native code, no gain: a shared resource is saturated), and this host's own calibration
  says its cores are real (the blas kernel scales ×:data:`MANY_CORES`+ on all cores) — otherwise
  SMT siblings sharing one core would look the same, and the answer is ``unclear``.
* ``unclear`` — no such evidence, or evidence both ways. A legitimate answer: the verdict then
  asks every kernel (below).

The declared ``bound`` of a model (``@batch(bound=...)``) is not used: a model file reads as
``blas`` whatever it is, which is why the nature is measured.

**The mode**: ``all`` when the deployment keeps more than one core busy (at least 1.5 cores and
half the usable ones, from its trials' CPU): the cores' shared resources — memory bandwidth, SMT,
the all-core clock — then set its speed; else ``single``.

**The verdict rule** (:func:`judge`). With ``C`` the gate's throughput, ``B`` the baseline's and
``r`` this host's speed over the baseline's host on the kernel of the model's nature (its
calibration ratio, in the deployment's mode), the host-adjusted change is ``C / (r·B) − 1``; its
95% CI adds the log half-widths of ``C``'s, ``B``'s and ``r``'s intervals in quadrature
(independent measurements; see :func:`tuner.calibrate.compare`). Then, with tolerance ``t``:

1. **no host-adjusted verdict** — today's rule decides, and the line says why: the baseline has no
   calibration ("re-measure the baseline with this version for host-adjusted verdicts"), this host
   was not calibrated, the calibrations do not compare (busy, another kernels' version), the model
   mostly waits (``io``), or the hosts run the kernel alike — no kernel differs and the ratio's CI
   lies within the tolerance either side of 1 (a wider CI cannot tell a slower host from a slower
   build). A matching fingerprint never makes hosts alike: only the calibrations do.
2. otherwise the hosts differ: **ok** when the adjusted CI's low end is within the tolerance
   (``>= −t``), **regression** when its high end is beyond it (``< −t``) *and* the change as
   measured is beyond it too (the host adjustment alone never fails a build: a calibration that
   read wrong would), else **inconclusive**: "this host runs the reference kernels 27% slower
   than the baseline's (calibration CI ...); the change (-28%) is within what that explains".
3. nature ``unclear``: ``r`` is the envelope of the kernels' ratios (lowest low to highest high).
   When the envelope leaves the verdict open, it is still ok / regression if it is so whichever
   kernel the model follows (each judged with its own, narrower interval), else inconclusive —
   saying the kernels disagree when they do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from tuner.bench.types import TrialResult
from tuner.calibrate import KERNELS, Calibration, HostSpeed, SpeedRatio, compare
from tuner.errors import ProfileError
from tuner.stats import median

__all__ = [
    "FLAT",
    "MANY_CORES",
    "NATURES",
    "OLD_BASELINE",
    "ONE_CORE",
    "SCALED",
    "WAITING",
    "HostAdjusted",
    "HostCheck",
    "Nature",
    "judge",
    "mode_for",
    "model_nature",
    "spread",
]

NATURES = ("python", "blas", "memory", "io", "unclear")
#: a step that at least doubled the parallelism scaled when it gained this much, CIs apart ...
SCALED = 1.25
#: ... and was flat when it gained at most this much
FLAT = 1.10
#: at most this many cores busy with 2+ threads that could run: one ran at a time (a GIL)
ONE_CORE = 1.2
#: at least this many cores busy: threads ran in parallel
MANY_CORES = 1.5
#: workers that used less than this share of the cores their configuration could use mostly wait
WAITING = 0.3
OLD_BASELINE = "the baseline has no host calibration: re-measure the baseline with this version for host-adjusted verdicts"


# ------------------------------------------------------------------------------- nature


@dataclass(frozen=True)
class Nature:
    """Which reference kernel speaks for the model, and the trials' evidence for it, in words."""

    kernel: str  # one of NATURES
    evidence: tuple[str, ...] = ()

    def describe(self) -> str:
        """``python (thread ×2 ran on 1.0 core, ×1.02; process ×2 ×1.86)``."""
        return f"{self.kernel} ({'; '.join(self.evidence)})" if self.evidence else self.kernel

    def to_dict(self) -> dict[str, Any]:
        """``{kernel, evidence: [...]}`` — for the profile (``model.nature``) and the gate's JSON."""
        return {"kernel": self.kernel, "evidence": list(self.evidence)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "model.nature") -> Nature:
        """Read :meth:`to_dict` output back; :class:`ProfileError` names what is wrong."""
        if not isinstance(d, Mapping):
            raise ProfileError(f"{where}: must be a mapping (got {d!r})"[:300])
        kernel = d.get("kernel")
        if kernel not in NATURES:
            raise ProfileError(f"{where}.kernel: must be one of {', '.join(NATURES)} (got {kernel!r})")
        evidence = d.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
            raise ProfileError(f"{where}.evidence: must be a list of strings (got {evidence!r})"[:300])
        return cls(str(kernel), tuple(evidence))


def _usable(results: Iterable[TrialResult]) -> list[TrialResult]:
    # Contaminated trials read low and a fault plan costs throughput: neither says how it scales.
    return [r for r in results if r.throughput > 0 and not r.error and not r.contaminated and not r.faults]


def _steps(
    results: list[TrialResult], knob: str, cores: int, capability: str | None = None
) -> list[tuple[TrialResult, TrialResult]]:
    """Pairs (fewer, more) of trials equal but in ``knob``, the more at least twice the fewer and
    within the usable cores (workers × threads); ``capability``: only backends that have it."""
    groups: dict[Any, list[TrialResult]] = {}
    for r in results:
        if getattr(r.config, knob) is None:  # the framework's own thread pool: no count to compare
            continue
        if capability is None or getattr(r.config.kind, capability):
            key = tuple(getattr(r.config, f.name) for f in fields(r.config) if f.name != knob)
            groups.setdefault(key, []).append(r)
    out = []
    for trials in groups.values():
        trials.sort(key=lambda r: getattr(r.config, knob))
        low = trials[0]
        for high in trials[1:]:
            fits = high.config.workers * high.config.threads_or(cores) <= cores
            if fits and getattr(high.config, knob) >= 2 * getattr(low.config, knob):
                out.append((low, high))
    return out


def _scaling(steps: list[tuple[TrialResult, TrialResult]], what: str, evidence: list[str]) -> str | None:
    """ "scaled" | "flat" | "between" | "mixed" over the steps (None when there are none); words in
    ``evidence``."""
    kinds = set()
    for low, high in steps:
        gain = high.throughput / low.throughput
        apart = high.throughput_ci[0] > low.throughput_ci[1]
        kind = "scaled" if gain >= SCALED and apart else "flat" if gain <= FLAT else "between"
        kinds.add(kind)
        evidence.append(
            f"{what} {getattr(low.config, _KNOB[what])}→{getattr(high.config, _KNOB[what])}: ×{gain:.2f}"
        )
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"


_KNOB = {
    "threads per worker": "threads_per_worker",
    "thread workers": "workers",
    "process workers": "workers",
}


def _cores(r: TrialResult, cores: int) -> float:
    return r.cpu_share * cores


def _cpu_signs(results: list[TrialResult], cores: int, evidence: list[str]) -> tuple[str | None, bool]:
    """(the thread backend's CPU with 2+ workers: "gil" | "parallel" | None, a worker process with
    2+ threads kept MANY_CORES busy)."""
    thread_cpu = None
    for r in results:
        c = r.config
        if c.kind.threads_in_caller and c.workers >= 2 and c.workers * c.threads_or(cores) <= cores:
            busy = _cores(r, cores)
            sign = "gil" if busy <= ONE_CORE else "parallel" if busy >= MANY_CORES else None
            if sign:
                evidence.append(f"thread ×{c.workers} kept {busy:.1f} cores busy")
                thread_cpu = sign if thread_cpu in (None, sign) else "mixed"
    many = False
    for r in results:
        c = r.config
        threads = c.threads_or(cores)
        if c.kind.own_processes and threads >= 2 and c.workers * threads <= cores:
            per = _cores(r, cores) / c.workers
            if per >= MANY_CORES:
                many = True
                evidence.append(f"a process worker with {threads} threads kept {per:.1f} cores busy")
    return thread_cpu, many


def _waits(results: list[TrialResult], cores: int) -> str | None:
    """Words when every trial's workers used under WAITING of the cores they could."""
    shares = []
    for r in results:
        could = min(cores, r.config.workers * r.config.threads_or(cores))
        if r.cpu_share <= 0 or could <= 0:
            return None  # no CPU figure: nothing to say
        shares.append(_cores(r, cores) / could)
    if shares and max(shares) < WAITING:
        return f"workers used at most {max(shares):.0%} of the cores they could: the model mostly waits"
    return None


def model_nature(
    results: Sequence[TrialResult], usable_cores: int, calibration: Calibration | None = None
) -> Nature:
    """Which reference kernel speaks for the model, from a sweep's own trials (module docstring).

    ``calibration``: this host's, measured at the start of the sweep; only needed to call a model
    ``memory`` (it tells real cores from SMT siblings)."""
    trials = _usable(results)
    cores = max(1, int(usable_cores))
    if not trials:
        return Nature("unclear", ("no clean trial measured a throughput",))
    waits = _waits(trials, cores)
    if waits:
        return Nature("io", (waits,))
    ev: list[str] = []
    threads = _scaling(_steps(trials, "threads_per_worker", cores), "threads per worker", ev)
    thread_b = _scaling(_steps(trials, "workers", cores, "threads_in_caller"), "thread workers", ev)
    process_b = _scaling(_steps(trials, "workers", cores, "own_processes"), "process workers", ev)
    thread_cpu, many = _cpu_signs(trials, cores, ev)
    native = threads == "scaled" or many or (thread_b == "scaled" and thread_cpu in (None, "parallel"))
    gil = thread_cpu == "gil" and thread_b in (None, "flat")
    saturated = thread_cpu == "parallel" and thread_b == "flat"
    evidence = tuple(ev)
    if native and not gil and not saturated:
        return Nature("blas", evidence)
    if gil and not native and process_b != "flat":
        return Nature("python", evidence)
    if saturated and not native and process_b != "scaled":
        real = _real_cores(calibration)
        if real:
            return Nature("memory", (*evidence, real))
        return Nature(
            "unclear", (*evidence, "threads busy without gain: memory-bound, or SMT siblings sharing a core")
        )
    return Nature(
        "unclear",
        evidence or ("no trials that tell (vary threads per worker, or workers of the thread backend)",),
    )


def _real_cores(cal: Calibration | None) -> str | None:
    """Words when this host's cores are real (its blas kernel scales on all cores), else None."""
    if cal is None:
        return None
    one, every = cal.score("blas", "single"), cal.score("blas", "all")
    if one is None or every is None or one.busy or every.busy:
        return None
    gain = every.score / one.score
    return f"this host's blas kernel scales ×{gain:.2f} on {cal.cores} cores" if gain >= MANY_CORES else None


def mode_for(results: Sequence[TrialResult], usable_cores: int) -> str:
    """ "all" when the deployment keeps more than one core busy (at least 1.5 and half the usable
    ones, by its trials' median CPU; by workers × threads without a CPU figure), else "single"."""
    cores = max(1, int(usable_cores))
    if cores < 2 or not results:
        return "single"
    shares = [r.cpu_share for r in results if r.cpu_share > 0]
    if shares:
        busy = median(shares) * cores
    else:
        c = results[0].config
        busy = float(min(cores, c.workers * c.threads_or(cores)))
    return "all" if busy >= max(MANY_CORES, cores / 2) else "single"


def spread(results: Sequence[TrialResult]) -> tuple[float, float]:
    """The gate's throughput interval over its trials: from the lower of (the median of the trials'
    CI lows, the lowest trial) to the higher of (the median of their CI highs, the highest trial) —
    within-trial noise and the trials' scatter, whichever is wider."""
    tputs = [r.throughput for r in results]
    lows = [r.throughput_ci[0] for r in results if r.throughput_ci[0] > 0]
    highs = [r.throughput_ci[1] for r in results if r.throughput_ci[1] > 0]
    lo = min([*tputs, median(lows)] if lows else tputs)
    hi = max([*tputs, median(highs)] if highs else tputs)
    return lo, hi


# ------------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class HostCheck:
    """This host at the gate, for :func:`tuner.bench.gate.decide`: its calibration, measured at the
    start of the gate, or None with ``problem`` saying why it could not be."""

    calibration: Calibration | None
    problem: str | None = None


@dataclass(frozen=True)
class HostAdjusted:
    """The host-adjusted verdict on throughput (:func:`judge`)."""

    kind: str | None  # "ok" | "regression" | "inconclusive"; None: no host-adjusted verdict
    change_pct: float  # the throughput change as measured
    words: str  # what the verdict line says about the host (and why, when kind is None)
    hosts: str  # "differ" | "alike" | "unknown" (never "alike" from a fingerprint)
    adjusted_pct: float | None = None  # the change relative to the host's speed
    adjusted_ci_pct: tuple[float, float] | None = None
    ratio: SpeedRatio | None = None  # this host's speed over the baseline's, the one used
    mode: str = "single"
    nature: Nature | None = None
    speed: HostSpeed | None = None
    baseline: Calibration | None = None
    current: Calibration | None = None

    @property
    def figures(self) -> str:
        """``host-adjusted -1.4%, CI -16% to +14%`` (empty without a host-adjusted change)."""
        if self.adjusted_pct is None or self.adjusted_ci_pct is None:
            return ""
        lo, hi = self.adjusted_ci_pct
        return f"host-adjusted {self.adjusted_pct:+.1f}%, CI {lo:+.0f}% to {hi:+.0f}%"

    def line(self, tolerance_pct: float) -> str:
        """The verdict standing alone: ``host-adjusted -1.4%, CI ...: within 10% — ok · <words>``;
        :func:`tuner.bench.gate.decide` composes its own line from the same parts."""
        if self.kind is None:
            return self.words
        where = "within" if self.kind == "ok" else "beyond"
        verdict = {"ok": "ok", "regression": "REGRESSION", "inconclusive": "inconclusive"}[self.kind]
        sep = ": " if self.kind == "inconclusive" else " · "
        return f"{self.figures}: {where} {tolerance_pct:g}% — {verdict}{sep}{self.words}"

    @property
    def latency_factor(self) -> float:
        """How much slower latency this host may explain: 1 / the ratio's low end when the
        verdict was host-adjusted (a host at 0.73× may raise a latency up to 1/0.70×), else 1."""
        if self.kind is None or self.ratio is None:
            return 1.0
        return 1.0 / self.ratio.low

    def to_json(self) -> dict[str, Any]:
        """The gate JSON's ``host_speed`` object: both hosts' calibrations, the ratio used, the
        adjusted change."""
        ci = self.adjusted_ci_pct
        return {
            "verdict": self.kind,
            "hosts": self.hosts,
            "words": self.words,
            "mode": self.mode,
            "nature": self.nature.to_dict() if self.nature else None,
            "ratio": self.ratio.to_dict() if self.ratio else None,
            "throughput_change_pct": round(self.change_pct, 2),
            "adjusted_change_pct": None if self.adjusted_pct is None else round(self.adjusted_pct, 2),
            "adjusted_change_ci_pct": None if ci is None else [round(ci[0], 2), round(ci[1], 2)],
            "speed": self.speed.to_dict() if self.speed else None,
            "baseline_calibration": self.baseline.to_dict() if self.baseline else None,
            "calibration": self.current.to_dict() if self.current else None,
        }


def _log_half(x: float, lo: float | None, hi: float | None) -> tuple[float, float]:
    """Log half-widths (below, above) of an interval around ``x``; 0 where there is none."""
    down = math.log(x / lo) if lo is not None and 0 < lo <= x else 0.0
    up = math.log(hi / x) if hi is not None and hi >= x > 0 else 0.0
    return down, up


def _adjust(
    base: float,
    base_ci: tuple[float, float] | None,
    cur: float,
    ci: tuple[float, float] | None,
    r: SpeedRatio,
) -> tuple[float, float, float]:
    """(adjusted change, its CI low, high) in %: C / (r·B) − 1, log half-widths in quadrature."""
    b_down, b_up = _log_half(base, *(base_ci or (None, None)))
    c_down, c_up = _log_half(cur, *(ci or (None, None)))
    r_down, r_up = _log_half(r.ratio, r.low, r.high)
    centre = math.log(cur / (r.ratio * base))
    low = centre - math.sqrt(c_down**2 + r_up**2 + b_up**2)
    high = centre + math.sqrt(c_up**2 + r_down**2 + b_down**2)
    return 100 * math.expm1(centre), 100 * math.expm1(low), 100 * math.expm1(high)


def _ratio_for(speed: HostSpeed, kernel: str, mode: str) -> SpeedRatio | None:
    """The kernel's ratio in ``mode`` (or one core, when all cores did not compare); the envelope
    when ``kernel`` is not one of the KERNELS (nature unclear)."""
    for m in (mode, "single") if mode == "all" else (mode,):
        r = speed.get(kernel, m) if kernel in KERNELS else speed.envelope(m)
        if r is not None:
            return r
    return None


def judge(
    base_throughput: float,
    throughput: float,
    tolerance_pct: float,
    *,
    base_ci: tuple[float, float] | None = None,
    ci: tuple[float, float] | None = None,
    base_calibration: Calibration | None,
    calibration: Calibration | None,
    nature: Nature | None,
    mode: str = "single",
    calibration_problem: str | None = None,
) -> HostAdjusted:
    """The host-adjusted verdict on ``throughput`` (the gate's median, ``ci`` its interval, e.g.
    :func:`spread`) against ``base_throughput`` (the profile's, ``base_ci`` its evidence CI), given
    both hosts' calibrations, the model's nature and the deployment's mode (:func:`mode_for`).
    ``calibration_problem``: why this host has no calibration (the gate could not run it).
    See the module docstring for the rule; kind None leaves the verdict to today's rule."""
    change = (throughput - base_throughput) / base_throughput * 100
    out = HostAdjusted(
        None, change, words="", hosts="unknown", mode=mode, nature=nature,
        baseline=base_calibration, current=calibration,
    )  # fmt: skip
    if base_calibration is None:
        return replace(out, words=OLD_BASELINE)
    if calibration is None:
        why = f" ({calibration_problem})" if calibration_problem else ""
        return replace(out, words=f"this host was not calibrated{why}: judged without host adjustment")
    speed = compare(base_calibration, calibration)
    kernel = nature.kernel if nature is not None else "unclear"
    r = _ratio_for(speed, kernel, mode)
    if r is None:
        what = f"the {kernel} kernel" if kernel in KERNELS else "any kernel"
        why = speed.problem_words()
        return replace(
            out,
            speed=speed,
            words=f"the host calibrations do not compare on {what} ({why}): judged without host adjustment",
        )
    family = [r] if kernel in KERNELS else speed.kernels(r.mode)
    # Alike only when the calibrations rule out a difference the size of the tolerance: a CI wider
    # than that (a short or noisy calibration) cannot tell a slower host from a slower build.
    band = tolerance_pct / 100
    narrow = r.low >= 1 / (1 + band) and r.high <= 1 + band
    alike = narrow and not any(k.differs for k in family)
    out = replace(out, speed=speed, ratio=r, hosts="alike" if alike else "differ")
    if kernel == "io":
        return replace(
            out,
            words=f"the model mostly waits (io): host speed does not set its throughput — {speed.describe(r)}",
        )
    if out.hosts == "alike":
        return replace(out, words=f"hosts alike: {speed.describe(r)}")
    adjusted, low, high = _adjust(base_throughput, base_ci, throughput, ci, r)
    kind = "ok" if low >= -tolerance_pct else "regression" if high < -tolerance_pct else "inconclusive"
    if kind == "inconclusive" and kernel not in KERNELS:
        # The envelope of the kernels is wider than any one of them: the rule is "ok or REGRESSION
        # if it is so whichever kernel the model follows", judged with each kernel's own interval.
        each = [_adjust(base_throughput, base_ci, throughput, ci, k) for k in family]
        if each and all(h < -tolerance_pct for _, _, h in each):
            kind = "regression"
        elif each and all(lo >= -tolerance_pct for _, lo, _ in each):
            kind = "ok"
    if kind == "regression" and change >= -tolerance_pct:
        # Within the tolerance as measured, beyond it only once the host's speed is taken out: a
        # calibration that read wrong (seen: 43% low on one kernel in a fresh VM process) would
        # fail an unchanged build, so the adjustment alone never makes a regression.
        return replace(
            out, kind="inconclusive", adjusted_pct=adjusted, adjusted_ci_pct=(low, high),
            words=f"{speed.describe(r)}; relative to it the change is beyond {tolerance_pct:g}%, as "
            "measured it is not — the calibrations alone never fail a build",
        )  # fmt: skip
    words = _words(kind, speed, r, kernel, change, tolerance_pct)
    return replace(out, kind=kind, words=words, adjusted_pct=adjusted, adjusted_ci_pct=(low, high))


def _words(
    kind: str, speed: HostSpeed, r: SpeedRatio, kernel: str, change: float, tolerance_pct: float = 10.0
) -> str:
    """The host's part of the verdict line (module docstring, rules 2 and 3)."""
    disagree = kernel not in KERNELS and not speed.agree(r.mode)
    if kind == "inconclusive" and disagree:
        each = ", ".join(f"{k.kernel} {k.words()}" for k in speed.kernels(r.mode))
        return (
            f"the model's nature is unclear and the reference kernels disagree on this host's speed "
            f"({each}); the change ({change:+.0f}%) is within what they explain"
        )
    host = speed.describe(r)
    if kind == "inconclusive" and r.ratio * (1 - tolerance_pct / 100) > 1 + change / 100:
        # the host's measured speed does not explain the change; only its wide interval might
        return (
            f"{host}; the change ({change:+.0f}%) is more than that speed explains, but the calibration's "
            "interval is too wide to tell a slower host from a slower build — compare side by side "
            "(--against) to decide"
        )
    if kind == "inconclusive":
        return f"{host}; the change ({change:+.0f}%) is within what that explains"
    if kind == "regression":
        return f"{host}; the change ({change:+.0f}%) is more than that explains"
    return host
