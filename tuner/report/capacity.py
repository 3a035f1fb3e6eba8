"""The capacity plan (``tuner plan``) as the report shows it: the one place that reads a
``tuner.plan.Plan`` (as :mod:`tuner.report.data` is the one place that reads a profile)."""

from __future__ import annotations

from typing import Any

from tuner.report.view import PlanView


def make_plan(profile: Any, rate: float, *, p99_ms: float | None = None, headroom_pct: float = 30.0) -> Any:
    """``tuner plan``'s plan for ``rate``: a ``BadInput`` line (exit 2) for a profile without an
    ``online:`` section, a ``TunerError`` (exit 1) when no measured rate meets the objective."""
    from tuner.plan import make_plan as plan

    return plan(profile, rate, p99_ms=p99_ms, headroom_pct=headroom_pct)


def plan_view(plan: Any, scaling: list[tuple[int, float]] | None = None) -> PlanView | None:
    """``plan`` with the measured scaling and the fitted USL curve; ``scaling``: the profile's
    closed-loop throughput by workers, shown when the plan has no fit (fewer than 3 worker counts)."""
    if plan is None:
        return None
    view = PlanView(
        words=list(getattr(plan, "words", []) or []),
        warnings=list(getattr(plan, "warnings", []) or []),
        assumptions=list(getattr(plan, "assumptions", []) or []),
        measured=list(scaling or []),
    )
    fit = getattr(plan, "fit", None)
    if fit is None:
        view.fit_words = str(getattr(plan, "fit_note", "") or "")
        return view
    residuals = getattr(fit, "residuals", None) or ()
    if residuals:  # (workers, median measured, fitted, relative residual)
        view.measured = [(int(r[0]), float(r[1])) for r in residuals]
    top = max([n for n, _ in view.measured] + [int(getattr(plan, "workers_per_host", 1) or 1)])
    n_max = max(2.0, top * 1.5)
    view.fitted = [(n, float(fit.predict(n))) for n in (1 + i * (n_max - 1) / 40 for i in range(41))]
    describe = getattr(fit, "describe", None)
    view.fit_words = describe() if callable(describe) else ""
    return view
