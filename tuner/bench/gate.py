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
            throughput_ci=tuple(ev.throughput_ci) if ev.throughput_ci else None,
            calibration=profile.host.calibration.calibration() if profile.host.calibration else None,
            nature=Nature.from_dict(profile.model.nature.model_dump()) if profile.model.nature else None,
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
    side_by_side: dict[str, Any] | None = None  # the paired comparison (tuner.bench.paired), when run

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
            **({"side_by_side": self.side_by_side} if self.side_by_side is not None else {}),
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


@dataclass
class _Measured:
    """The gate's trials reduced to what the rules read."""

    good: list[TrialResult]  # trials that measured a throughput
    clean: list[TrialResult]
    busy: bool  # fewer than GATE_MIN_CLEAN clean trials: decided on every trial
    basis: list[TrialResult]  # the trials that decide
    throughput: float
    p99: float | None
    load: float  # mean outside load over the deciding trials
    load_max: float

    @classmethod
    def of(cls, results: list[TrialResult]) -> _Measured:
        good = [r for r in results if r.throughput > 0 and not r.error]
        if not good:
            raise ValueError("decide() needs at least one trial that measured a throughput")
        clean = [r for r in good if not r.contaminated]
        busy = len(clean) < GATE_MIN_CLEAN
        basis = good if busy else clean
        p99s = [r.latency_ms["p99"] for r in basis if "p99" in r.latency_ms]
        return cls(
            good=good,
            clean=clean,
            busy=busy,
            basis=basis,
            throughput=median([r.throughput for r in basis]),
            p99=median(p99s) if p99s else None,
            load=_mean_outside(basis),
            load_max=max((r.outside.cpu_max for r in good if r.outside is not None), default=0.0),
        )

    @property
    def windows(self) -> int:
        return sum(len(r.windows) for r in self.good)

    @property
    def dropped(self) -> int:
        return sum(len(r.discarded_windows) for r in self.good)


@dataclass
class _Findings:
    """What is beyond the tolerance (``over``), what of it more than the outside load could explain
    (``real``), and what the load could explain (``explained``)."""

    over: list[str] = field(default_factory=list)
    real: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)

    def beyond(
        self, what: str, points: float, load: float, tolerance_pct: float, qualifier: str = ""
    ) -> None:
        """``what`` is beyond the tolerance by ``points``; real when still beyond it with the load's share off."""
        self.over.append(what)
        if points - 100 * load > tolerance_pct:
            self.real.append(what)
        else:
            self.explained.append(f"{what}, {100 * load:.0f} points of it explainable{qualifier}")


def _throughput_rule(
    m: _Measured, dt: float, tolerance_pct: float, hs: HostAdjusted | None, found: _Findings
) -> None:
    """The throughput: host-adjusted when the calibrations say the hosts differ, else as measured."""
    if hs is not None and hs.kind == "regression" and hs.adjusted_ci_pct and hs.adjusted_pct is not None:
        # Clearly beyond the tolerance relative to the host's speed: the outside load may still
        # explain part of it, as in today's rule (its points off the CI's most favourable end).
        found.beyond(
            f"host-adjusted throughput fell {-hs.adjusted_pct:.1f}%",
            -hs.adjusted_ci_pct[1],
            m.load,
            tolerance_pct,
        )
    elif hs is not None and hs.kind == "inconclusive":
        found.over.append(f"throughput fell {-dt:.1f}%" if -dt > tolerance_pct else "host-adjusted")
    elif hs is not None and hs.kind is not None:
        pass  # host-adjusted ok
    elif -dt > tolerance_pct:
        found.beyond(f"throughput fell {-dt:.1f}%", -dt, m.load, tolerance_pct)


def _p99_rule(
    m: _Measured, base: BaselineFigures, tolerance_pct: float, hs: HostAdjusted | None, found: _Findings
) -> float | None:
    """The p99 change in percent (None without both p99s); a rise counts only when the intervals
    separate — a tail percentile is noisier than a median (seen: an unchanged build's p99 +16% on
    a loaded 2-core CI box) — and is trusted only on a quiet host."""
    if m.p99 is None or not base.p99_ms:
        return None
    dp = (m.p99 - base.p99_ms) / base.p99_ms * 100
    lows = [r.latency_ci_ms["p99"][0] for r in m.basis if "p99" in r.latency_ci_ms]
    new_low = median(lows) if lows else m.p99
    old_high = base.p99_ci_high_ms if base.p99_ci_high_ms is not None else base.p99_ms
    old_high *= hs.latency_factor if hs is not None else 1.0  # a slower host's latency
    if new_low > old_high * (1 + tolerance_pct / 100) + GATE_P99_SLACK_MS:
        found.over.append(f"p99 rose {dp:.0f}%")
        if m.load < P99_QUIET:
            found.real.append(f"p99 rose {dp:.0f}%")
        else:
            found.explained.append(f"p99 rose {dp:.0f}% on a host {100 * m.load:.0f}% busy")
    return dp


def _verdict(
    m: _Measured, found: _Findings, dt: float, tolerance_pct: float, hs: HostAdjusted | None, cores: str
) -> tuple[str, str, str, bool]:
    """(kind, the line's verdict part, the error message, whether the host's words are in it)."""
    t = f"{tolerance_pct:g}%"
    over = ", ".join(found.over)
    if not found.over:
        text = f": within {t} — ok"
        if m.busy:
            text += (
                f" (on a busy host: outside load {m.load:.0%} of {cores}, {m.dropped} of {m.windows} "
                "windows busy — a slower build could pass unseen)"
            )
        return "ok", text, "", False
    if m.busy:
        top = _top(m.good)
        busiest = f"; busiest others: {describe_top(top)}" if top else ""
        why = (
            f"host busy — outside load {m.load:.0%} of {cores} (up to {m.load_max:.0%}); "
            f"{len(m.good) - len(m.clean)} of {len(m.good)} trials could not get clean windows, {m.dropped} of "
            f"{m.windows} windows busy{busiest}"
        )
        return (
            "inconclusive",
            f": beyond {t} ({over}) — inconclusive: {why}",
            f"{why}; no verdict: re-run on a quiet host ({over})",
            False,
        )
    if found.real:
        return "regression", f": beyond {t} — REGRESSION", f"{', '.join(found.real)} (limit {t})", False
    if hs is not None and hs.kind == "inconclusive":
        where = (
            f"beyond {t} ({over})" if -dt > tolerance_pct else f"within {t} as measured"
        )  # a faster host may hide a slower build
        message = f"{hs.words}; no verdict: gate on a host as fast as the baseline's, or re-measure the baseline on this one"
        return "inconclusive", f": {where} — inconclusive: {hs.words}", message, True
    why = (
        f"the outside load while measuring ({m.load:.0%} of {cores}) could explain it "
        f"({'; '.join(found.explained)})"
    )
    return (
        "inconclusive",
        f": beyond {t} ({over}) — inconclusive: {why}",
        f"{why}; no verdict: re-run on a quiet host",
        False,
    )


def _notes(m: _Measured, kind: str, base: BaselineFigures, cores: str) -> str:
    """What else the line says: the host's load, a baseline that reads low."""
    text = ""
    if kind != "inconclusive" and not m.busy:
        if m.dropped:
            text += f" · host: outside load {m.load:.0%} of {cores}, {fmt.plural(m.dropped, 'busy window')} discarded"
        elif m.load >= 0.05:
            text += f" · host: outside load {m.load:.0%} of {cores}"
    if base.contaminated:
        # A baseline that read low lets a slower build pass: say so, whatever the verdict.
        load_then = f" (outside load {base.outside:.0%})" if base.outside is not None else ""
        text += (
            f" · the baseline was measured on a busy host{load_then}: it reads low, so a slower "
            "build can pass unseen — re-measure it on a quiet host"
        )
    return text


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
    m = _Measured.of(results)
    cores = fmt.plural(usable_cores, "core")
    dt = (m.throughput - base.throughput) / base.throughput * 100
    hs = None
    if host is not None:
        hs = judge(
            base.throughput, m.throughput, tolerance_pct, base_ci=base.throughput_ci, ci=spread(m.basis),
            base_calibration=base.calibration, calibration=host.calibration, nature=base.nature,
            mode=mode_for(m.basis, usable_cores), calibration_problem=host.problem,
        )  # fmt: skip
    figures = f"; {hs.figures}" if hs is not None and hs.kind is not None else ""
    text = f"throughput {fmt.rate(m.throughput)} items/s vs {fmt.rate(base.throughput)} ({dt:+.1f}%{figures})"
    found = _Findings()
    _throughput_rule(m, dt, tolerance_pct, hs, found)
    dp = _p99_rule(m, base, tolerance_pct, hs, found)
    if dp is not None:
        assert m.p99 is not None and base.p99_ms
        text += f", p99 {fmt.ms(m.p99)} vs {fmt.ms(base.p99_ms)} ({dp:+.0f}%)"
    kind, said, message, hs_said = _verdict(m, found, dt, tolerance_pct, hs, cores)
    text += said + _notes(m, kind, base, cores)
    if hs is not None and not hs_said:
        text += f" · {hs.words}"  # what the calibrations say about the two hosts
    same_host: bool | None = (
        fingerprint is None or base.fingerprint is None or base.fingerprint == fingerprint
    )
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
        throughput=m.throughput,
        p99_ms=m.p99,
        throughput_change_pct=dt,
        p99_change_pct=dp,
        outside=m.load,
        busy=m.busy,
        trials=len(m.good),
        clean_trials=len(m.clean),
        windows=m.windows,
        windows_discarded=m.dropped,
        same_host=same_host,
        top=_top(m.good),
        host_speed=hs,
    )
