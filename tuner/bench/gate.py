"""The regression gate's verdict: ok, regression, or inconclusive — never a regression a busy host made.

``tuner bench --baseline P`` re-measures the profile's recommended configuration (``GATE_REPEATS``
trials; a trial whose host was too busy to give a clean measurement is re-run, up to
``GATE_MAX_TRIALS`` in all) and hands the trials here. The rules, in order:

1. **Which trials decide.** The clean trials (:attr:`TrialResult.contaminated` False: they got a
   stable set of windows below the outside-load limit, :mod:`tuner.hostload`) when there are at
   least ``GATE_MIN_CLEAN`` of them; otherwise every trial that ran, and the host counts as *busy*.
2. **The figures.** Throughput = median of the deciding trials' throughputs; p99 likewise. A p99
   rise counts only when the intervals separate: the new p99's 95% CI low above the baseline's CI
   high plus the tolerance plus ``GATE_P99_SLACK_MS`` (a tail percentile is noisier than a median).
3. **The verdict.**

   * within tolerance → **ok** (on a busy host too: load only slows a build down, so a build that
     keeps up on a busy host keeps up on a quiet one; the line says the host was busy);
   * beyond tolerance on a busy host → **inconclusive: host busy** (exit 3), naming the load and
     the busiest other processes — never a regression;
   * beyond tolerance on clean trials, but within what the outside load they still saw could
     explain → **inconclusive**. A share *s* of the usable cores used by other processes can cost a
     trial that keeps every core busy up to *s* of its throughput (the scheduler shares the cores),
     so the drop must exceed the tolerance *plus* 100 × *s* points; a p99 rise is trusted only on a
     host whose outside load stayed under ``P99_QUIET`` (tail latency is what a busy host hurts
     first);
   * otherwise → **regression** (exit 1).

A baseline measured on another host (its fingerprint differs), or on a busy one (its evidence says
it was contaminated, so it reads low), is said in the verdict line; the figures are still compared.

**Host speed** (issue 23), when the gate passes ``host`` (this host's calibration): the throughput
rule above is replaced by the host-adjusted one of :mod:`tuner.bench.hostspeed` whenever the two
calibrations say the hosts differ — ok / REGRESSION only when the change relative to the host's
speed is clearly inside / outside the tolerance (a regression must still exceed what the outside
load could explain), else inconclusive, saying how much slower or faster this host runs the
reference kernels; a p99 rise is judged against the baseline's p99 scaled by what the host's
speed can explain. Otherwise (an older baseline without calibration, hosts alike, a model that
mostly waits) today's rule decides and the line says why. A matching fingerprint alone no longer
makes ``same_host`` true: only matching calibrations do (it is None when nothing can tell).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tuner import fmt
from tuner.bench.hostspeed import HostAdjusted, HostCheck, Nature, judge, mode_for, spread
from tuner.bench.types import TrialResult
from tuner.calibrate import Calibration
from tuner.hostload import OutsideProcess, describe_top
from tuner.stats import median

__all__ = [
    "GATE_MAX_TRIALS",
    "GATE_MIN_CLEAN",
    "GATE_P99_SLACK_MS",
    "GATE_REPEATS",
    "P99_QUIET",
    "BaselineFigures",
    "HostCheck",
    "Verdict",
    "decide",
    "want_another",
]

#: trials the regression gate measures (the median of these is compared: one trial never decides)
GATE_REPEATS = 3
#: at most this many trials in all: a contaminated trial is re-run while the host may quieten down
GATE_MAX_TRIALS = GATE_REPEATS + 2
#: clean trials needed to decide on clean trials only
GATE_MIN_CLEAN = 2
#: p99 below this many ms is at the mercy of the scheduler: the gate allows this much absolute slack
GATE_P99_SLACK_MS = 0.5
#: above this outside load (share of the usable cores), a p99 rise alone is not called a regression
P99_QUIET = 0.05


@dataclass(frozen=True)
class BaselineFigures:
    """What the profile recorded for its recommendation (``evidence``) and where it was measured."""

    throughput: float
    p99_ms: float | None = None
    p99_ci_high_ms: float | None = None
    fingerprint: str | None = None
    host_summary: str | None = None
    outside: float | None = None  # the outside load the profile recorded (evidence.host_load)
    contaminated: bool = False  # the profile itself was measured on a busy host: it reads low
    # -- host speed (issue 23) --
    throughput_ci: tuple[float, float] | None = None  # evidence.throughput_ci
    calibration: Calibration | None = None  # host.calibration; None: a profile from before issue 23
    nature: Nature | None = None  # the model's nature the sweep recorded (model.nature)

    @classmethod
    def of(cls, profile: Any) -> BaselineFigures:
        """A profile's recorded figures."""
        ev = profile.evidence
        return cls(
            throughput=ev.throughput,
            p99_ms=ev.latency_ms.p99 if ev.latency_ms else None,
            p99_ci_high_ms=ev.latency_ci_ms.p99[1] if ev.latency_ci_ms and ev.latency_ci_ms.p99 else None,
            fingerprint=profile.host.fingerprint,
            host_summary=profile.host.summary,
            outside=ev.host_load.outside if ev.host_load else None,
            contaminated=bool(ev.host_load and ev.host_load.contaminated),
        )


@dataclass
class Verdict:
    """The gate's decision and everything its line, JSON and exit code say."""

    kind: str  # "ok" | "regression" | "inconclusive"
    line: str  # the one line printed (stdout, the Markdown summary)
    message: str  # the error line for exit 1 or 3 (without "regression against P: ")
    throughput: float
    p99_ms: float | None
    throughput_change_pct: float
    p99_change_pct: float | None
    outside: float  # mean outside load over the deciding trials' figure windows
    busy: bool  # decided on contaminated trials: no clean measurement could be had
    trials: int
    clean_trials: int
    windows: int
    windows_discarded: int
    same_host: bool | None  # None: nothing can tell (no calibrations to compare, same fingerprint)
    top: list[OutsideProcess] = field(default_factory=list)
    host_speed: HostAdjusted | None = None  # the host-adjusted rule's say, when ``host`` was given

    def to_json(self, tolerance_pct: float) -> dict[str, Any]:
        """The ``gate`` object of ``tuner bench --baseline P --json``."""
        return {
            "ok": self.kind == "ok",
            "verdict": self.kind,
            "line": self.line,
            "throughput": self.throughput,
            "p99_ms": self.p99_ms,
            "throughput_change_pct": round(self.throughput_change_pct, 2),
            "p99_change_pct": None if self.p99_change_pct is None else round(self.p99_change_pct, 2),
            "tolerance_pct": tolerance_pct,
            "outside_load": round(self.outside, 3),
            "host_busy": self.busy,
            "trials": self.trials,
            "clean_trials": self.clean_trials,
            "windows": self.windows,
            "windows_discarded": self.windows_discarded,
            "busiest_others": [{"name": p.name, "pid": p.pid, "share": p.share} for p in self.top],
            "same_host": self.same_host,
            **({"host_speed": self.host_speed.to_json()} if self.host_speed is not None else {}),
        }


def want_another(results: list[TrialResult]) -> bool:
    """Whether the gate should measure one more trial: fewer than ``GATE_REPEATS`` trials, or
    fewer than ``GATE_REPEATS`` clean ones and room left under ``GATE_MAX_TRIALS``."""
    if len(results) < GATE_REPEATS:
        return True
    clean = sum(1 for r in results if not r.contaminated and r.throughput > 0)
    return clean < GATE_REPEATS and len(results) < GATE_MAX_TRIALS


def _top(results: list[TrialResult]) -> list[OutsideProcess]:
    """The busiest other processes over the trials (each one's highest share), busiest first."""
    best: dict[tuple[str, int], float] = {}
    for r in results:
        for p in r.outside.top if r.outside is not None else []:
            best[(p.name, p.pid)] = max(best.get((p.name, p.pid), 0.0), p.share)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:3]
    return [OutsideProcess(name, pid, share) for (name, pid), share in ranked]


def _mean_outside(results: list[TrialResult]) -> float:
    loads = [r.outside.cpu for r in results if r.outside is not None]
    return statistics.fmean(loads) if loads else 0.0


_fmt_rate = fmt.rate
_fmt_ms = fmt.ms


def decide(
    results: list[TrialResult],
    base: BaselineFigures,
    tolerance_pct: float,
    *,
    usable_cores: int,
    fingerprint: str | None = None,
    host: HostCheck | None = None,
) -> Verdict:
    """The verdict on ``results`` (the gate's trials, at least one with throughput > 0) against
    ``base`` (see the module docstring for the rules). ``host``: this host's calibration, for the
    host-adjusted rule against ``base.calibration``; None keeps the rule as before issue 23."""
    good = [r for r in results if r.throughput > 0 and not r.error]
    if not good:
        raise ValueError("decide() needs at least one trial that measured a throughput")
    clean = [r for r in good if not r.contaminated]
    busy = len(clean) < GATE_MIN_CLEAN
    basis = good if busy else clean
    tput = median([r.throughput for r in basis])
    p99s = [r.latency_ms["p99"] for r in basis if "p99" in r.latency_ms]
    p99 = median(p99s) if p99s else None
    load = _mean_outside(basis)
    load_max = max((r.outside.cpu_max for r in good if r.outside is not None), default=0.0)
    cores = f"{usable_cores} core{'s' if usable_cores != 1 else ''}"
    top = _top(good)

    dt = (tput - base.throughput) / base.throughput * 100
    hs = None
    if host is not None:
        hs = judge(
            base.throughput, tput, tolerance_pct, base_ci=base.throughput_ci, ci=spread(basis),
            base_calibration=base.calibration, calibration=host.calibration, nature=base.nature,
            mode=mode_for(basis, usable_cores), calibration_problem=host.problem,
        )  # fmt: skip
    adjusted = hs is not None and hs.kind is not None
    figures = f"; {hs.figures}" if hs is not None and adjusted else ""
    text = f"throughput {_fmt_rate(tput)} items/s vs {_fmt_rate(base.throughput)} ({dt:+.1f}%{figures})"
    over: list[str] = []  # what is beyond the tolerance
    real: list[str] = []  # ... and more than the outside load could explain
    explained: list[str] = []
    if hs is not None and hs.kind == "regression" and hs.adjusted_ci_pct and hs.adjusted_pct is not None:
        # Clearly beyond the tolerance relative to the host's speed: the outside load may still
        # explain part of it, as in today's rule (its points off the CI's most favourable end).
        fell = f"host-adjusted throughput fell {-hs.adjusted_pct:.1f}%"
        over.append(fell)
        if -hs.adjusted_ci_pct[1] - 100 * load > tolerance_pct:
            real.append(fell)
        else:
            explained.append(f"{fell}, {100 * load:.0f} points of it explainable")
    elif hs is not None and hs.kind == "inconclusive":
        over.append(f"throughput fell {-dt:.1f}%" if -dt > tolerance_pct else "host-adjusted")
    elif adjusted:
        pass  # host-adjusted ok
    elif -dt > tolerance_pct:
        over.append(f"throughput fell {-dt:.1f}%")
        if -dt - 100 * load > tolerance_pct:
            real.append(f"throughput fell {-dt:.1f}%")
        else:
            explained.append(f"throughput fell {-dt:.1f}%, {100 * load:.0f} points of it explainable")
    dp = None
    if p99 is not None and base.p99_ms:
        dp = (p99 - base.p99_ms) / base.p99_ms * 100
        text += f", p99 {_fmt_ms(p99)} vs {_fmt_ms(base.p99_ms)} ({dp:+.0f}%)"
        # A tail percentile is noisier than a median: a p99 regression is called only when the
        # intervals separate (seen: an unchanged build's p99 +16% on a loaded 2-core CI box).
        lows = [r.latency_ci_ms["p99"][0] for r in basis if "p99" in r.latency_ci_ms]
        new_low = median(lows) if lows else p99
        old_high = base.p99_ci_high_ms if base.p99_ci_high_ms is not None else base.p99_ms
        old_high *= hs.latency_factor if hs is not None else 1.0  # a slower host's latency
        if new_low > old_high * (1 + tolerance_pct / 100) + GATE_P99_SLACK_MS:
            over.append(f"p99 rose {dp:.0f}%")
            if load < P99_QUIET:
                real.append(f"p99 rose {dp:.0f}%")
            else:
                explained.append(f"p99 rose {dp:.0f}% on a host {100 * load:.0f}% busy")

    hs_said = False  # the host's words are in the line already
    n_windows = sum(len(r.windows) for r in good)
    n_dropped = sum(len(r.discarded_windows) for r in good)
    n_dirty = len(good) - len(clean)
    busiest = f"; busiest others: {describe_top(top)}" if top else ""
    if not over:
        kind, message = "ok", ""
        text += f": within {tolerance_pct:g}% — ok"
        if busy:
            text += (
                f" (on a busy host: outside load {load:.0%} of {cores}, {n_dropped} of {n_windows} "
                "windows busy — a slower build could pass unseen)"
            )
    elif busy:
        kind = "inconclusive"
        why = (
            f"host busy — outside load {load:.0%} of {cores} (up to {load_max:.0%}); "
            f"{n_dirty} of {len(good)} trials could not get clean windows, {n_dropped} of "
            f"{n_windows} windows busy{busiest}"
        )
        text += f": beyond {tolerance_pct:g}% ({', '.join(over)}) — inconclusive: {why}"
        message = f"{why}; no verdict: re-run on a quiet host ({', '.join(over)})"
    elif real:
        kind = "regression"
        message = f"{', '.join(real)} (limit {tolerance_pct:g}%)"
        text += f": beyond {tolerance_pct:g}% — REGRESSION"
    elif hs is not None and hs.kind == "inconclusive":
        kind = "inconclusive"
        if -dt > tolerance_pct:
            text += f": beyond {tolerance_pct:g}% ({', '.join(over)}) — inconclusive: {hs.words}"
        else:  # a faster host may hide a slower build
            text += f": within {tolerance_pct:g}% as measured — inconclusive: {hs.words}"
        hs_said = True
        message = (
            f"{hs.words}; no verdict: gate on a host as fast as the baseline's, or re-measure the "
            "baseline on this one"
        )
    else:
        kind = "inconclusive"
        why = (
            f"the outside load while measuring ({load:.0%} of {cores}) could explain it "
            f"({'; '.join(explained)})"
        )
        text += f": beyond {tolerance_pct:g}% ({', '.join(over)}) — inconclusive: {why}"
        message = f"{why}; no verdict: re-run on a quiet host"
    if kind != "inconclusive" and not busy:
        if n_dropped:
            plural = "s" if n_dropped != 1 else ""
            text += f" · host: outside load {load:.0%} of {cores}, {n_dropped} busy window{plural} discarded"
        elif load >= 0.05:
            text += f" · host: outside load {load:.0%} of {cores}"
    if base.contaminated:
        # A baseline that read low lets a slower build pass: say so, whatever the verdict.
        load_then = f" (outside load {base.outside:.0%})" if base.outside is not None else ""
        text += (
            f" · the baseline was measured on a busy host{load_then}: it reads low, so a slower "
            "build can pass unseen — re-measure it on a quiet host"
        )
    if hs is not None and not hs_said:
        text += f" · {hs.words}"  # what the calibrations say about the two hosts
    same_host: bool | None = fingerprint is None or base.fingerprint is None or base.fingerprint == fingerprint
    if hs is not None and same_host:
        # Issue 23: one fingerprint is not one machine; only the calibrations can say "alike".
        same_host = {"alike": True, "differ": False}.get(hs.hosts)
    if fingerprint is not None and base.fingerprint is not None and base.fingerprint != fingerprint:
        where = f" ({base.host_summary})" if base.host_summary else ""
        text += f" · baseline measured on another host{where}"
        if message:
            message += " — the baseline was measured on another host"
    return Verdict(
        kind=kind,
        line=text,
        message=message,
        throughput=tput,
        p99_ms=p99,
        throughput_change_pct=dt,
        p99_change_pct=dp,
        outside=load,
        busy=busy,
        trials=len(good),
        clean_trials=len(clean),
        windows=n_windows,
        windows_discarded=n_dropped,
        same_host=same_host,
        top=top,
        host_speed=hs,
    )
