"""What an online sweep leaves behind: the profile's ``online:`` section, the JSON, a table, step lines.

The scaling curve written for the capacity plan is the closed-loop throughput against workers at the
winner's backend and thread count — the best trial per worker count (any partition size), with the
windows its figure is over (the last 3 of a stable trial, all of an unstable one) — because the
closed loop measured more worker counts than the online search can afford to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.bench.online.results import StepResult
from tuner.bench.online.schedule import Trace
from tuner.bench.online.search import CANDIDATE_SETTINGS, CandidateResult, candidate_label, latest
from tuner.bench.online.sweep import OnlineSummary
from tuner.bench.request import OnlineRequest
from tuner.bench.types import TrialResult

if TYPE_CHECKING:
    from tuner.profile import Online, ScalingCurve

__all__ = ["curve_table", "online_json", "online_section", "scaling_points", "step_line"]

#: windows of a stable trial its figure is over (MeasureSettings.stable_windows's default)
STABLE_WINDOWS = 3


_fmt = fmt.rate


def _n(x: float | None) -> str:
    """A number of ms in a table cell (no unit: the column says it)."""
    return fmt.ms(x).removesuffix(" ms")


def scaling_points(
    results: Sequence[TrialResult], backend: str, threads: int | None
) -> list[tuple[int, float, list[float]]]:
    """(workers, items/s, window items/s) per worker count: the best closed-loop trial of each."""
    best: dict[int, TrialResult] = {}
    for r in results:
        c = r.config
        if r.error or r.throughput <= 0 or c.backend != backend or c.threads_per_worker != threads:
            continue
        if c.workers not in best or r.throughput > best[c.workers].throughput:
            best[c.workers] = r
    out = []
    for n, r in sorted(best.items()):
        windows = r.windows[-STABLE_WINDOWS:] if r.stable else list(r.windows)
        out.append((n, float(r.throughput), [float(w) for w in windows if w > 0]))
    return out


def _curve_point(s: StepResult) -> dict[str, Any]:
    lat = s.latency_ms
    keeps_up = all(r.startswith("p99 ") for r in s.reasons)
    ci = s.latency_ci_ms.get("p99")
    return {
        "rate": s.rate,
        "offered": s.offered,
        "achieved": s.achieved,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "p999_ms": lat.get("p999"),
        "p99_ci_ms": (float(ci[0]), float(ci[1])) if ci else None,
        "keeps_up": keeps_up and bool(lat),
        "sustainable": s.sustainable,
        "cpu_cores": s.cpu_cores,
        "outside_load": s.outside,
    }


def curve_points(steps: Sequence[StepResult]) -> list[dict[str, Any]]:
    """The profile's ``curve`` entries (:class:`tuner.profile.OnlineStep` fields) of ``steps``."""
    return [_curve_point(s) for s in steps]


def online_section(
    summary: OnlineSummary,
    results: Sequence[CandidateResult],
    request: OnlineRequest,
    closed_loop: Sequence[TrialResult],
    *,
    measuring_s: float | None = None,
) -> Online | None:
    """The profile's ``online:`` section (None when no candidate sustained any rate)."""
    from tuner.profile import Online, OnlineCandidate, OnlineStep, ScalingCurve, ScalingPoint

    win = summary.winner
    if win is None or win.best is None or summary.max_pending is None:
        return None
    c = win.candidate
    lo, hi = win.search.max_rate_ci
    pts = scaling_points(closed_loop, c.backend, c.threads_per_worker)
    scaling: ScalingCurve | None = None
    if pts:
        scaling = ScalingCurve.from_deployment(
            c, points=[ScalingPoint(workers=n, throughput=x, windows=w) for n, x, w in pts]
        )
    candidates = [
        OnlineCandidate.from_deployment(
            r.candidate,
            max_rate_at_slo=float(r.max_rate),
            p99_ms=r.best.latency_ms.get("p99") if r.best is not None else None,
            steps=len(r.steps),
        )
        for r in results
        if r.error is None
    ]
    sized_by_trace = isinstance(request.arrivals, Trace) and request.arrivals.sizes is not None
    return Online.from_deployment(
        replace(c, max_pending=summary.max_pending),
        objective_p99_ms=request.objective_ms,
        arrivals=request.arrivals_text,
        request_size="as in the trace" if sized_by_trace else str(request.request_size),
        items_per_request=float(win.best.items_per_request),
        step_s=request.step_s,
        max_rate_at_slo=float(win.max_rate),
        max_rate_ci=(float(lo), float(hi) if hi is not None else None),
        p99_at_max_ms=win.best.latency_ms.get("p99"),
        # A rate measured twice (a re-check, a confirmation) counts by its latest verdict.
        curve=[OnlineStep(**_curve_point(s)) for s in sorted(latest(win.steps), key=lambda s: s.rate)],
        candidates=candidates,
        scaling=scaling,
        budget_s=request.budget_s,
        measuring_s=round(measuring_s, 1) if measuring_s is not None else None,
        reasoning="; ".join(w.strip() for w in summary.words),
    )


def online_json(
    summary: OnlineSummary, results: Sequence[CandidateResult], request: OnlineRequest
) -> dict[str, Any]:
    """The online part of ``tuner bench --json``."""
    win = summary.winner
    return {
        "objective_p99_ms": request.objective_ms,
        "arrivals": request.arrivals_text,
        "request_size": str(request.request_size),
        "winner": win.candidate.public(CANDIDATE_SETTINGS) if win is not None else None,
        "max_rate_at_slo": win.max_rate if win is not None else 0.0,
        "max_rate_ci": list(win.search.max_rate_ci) if win is not None else None,
        "max_pending": summary.max_pending,
        "candidates": [r.to_dict() for r in results],
        "words": summary.words,
    }


def step_line(s: StepResult) -> str:
    """``1.20k/s → offered 1.20k, achieved 1.20k · p99 31.2 ms · queue +2/s · sustainable``."""
    p99 = s.latency_ms.get("p99")
    p99_text = fmt.ms(p99)
    lag = f" · generator late ×{s.late} (max {s.max_lag_ms:.0f} ms)" if s.late else ""
    return (
        f"{_fmt(s.rate)}/s → offered {_fmt(s.offered)}, achieved {_fmt(s.achieved)} · p99 {p99_text} · "
        f"queue {_signed_rate(s.queue_slope)} items/s{lag} · {s.verdict()}"
    )


def curve_table(result: CandidateResult) -> Any:
    """A rich table of one candidate's steps by rate: the latency-vs-rate curve with verdicts."""
    from rich.table import Table

    t = Table(title=f"latency vs rate · {candidate_label(result.candidate)}", title_justify="left")
    for col in (
        "rate/s",
        "offered",
        "achieved",
        "p50 ms",
        "p99 ms",
        "p99 95% CI",
        "p99.9 ms",
        "queue/s",
        "batch",
        "verdict",
    ):
        t.add_column(col, justify="right" if col != "verdict" else "left")
    best = result.best
    for s in sorted(result.steps, key=lambda s: s.rate):
        lat, ci = s.latency_ms, s.latency_ci_ms.get("p99")
        n = sum(s.batches.values())
        mean_batch = f"{sum(k * v for k, v in s.batches.items()) / n:.1f}" if n else "–"
        t.add_row(
            ("★ " if s is best else "") + _fmt(s.rate),
            _fmt(s.offered),
            _fmt(s.achieved),
            _n(lat.get("p50")),
            _n(lat.get("p99")),
            f"{_n(ci[0])}–{_n(ci[1])}" if ci else "–",
            _n(lat.get("p999")),
            _signed_rate(s.queue_slope),
            mean_batch,
            "sustainable" if s.sustainable else "; ".join(s.reasons),
        )
    return t


def _signed_rate(x: float) -> str:
    """A queue's slope: '+19.9k', '-171', '+0.039' (never scientific notation)."""
    return ("+" if x >= 0 else "-") + fmt.rate(abs(x))
