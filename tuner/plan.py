"""Capacity planning: the Universal Scalability Law fitted to measured throughput, and a plan for a rate.

**The fit** (Gunther; Schwartz, "Practical Scalability Analysis with the USL")::

    X(N) = λ N / (1 + σ (N − 1) + κ N (N − 1))

N workers, X items/s; λ the throughput of one worker, σ *contention* (the share of work that
serialises: queueing on a shared resource), κ *coherency* (the pairwise cost of keeping workers
consistent: the term that makes throughput fall past a peak at N* = √((1 − σ) / κ)).

How: ``N / X = (1 + σ(N−1) + κN(N−1)) / λ`` is *linear* in (1/λ, σ/λ, κ/λ), so a weighted linear
least squares (numpy, rows scaled so each residual is relative to its throughput — a window's noise
is proportional to its level) gives a start that a few Gauss–Newton steps on the relative residuals
of X itself then polish. σ and κ are kept >= 0 (a negative value — superlinear scaling, a cache
effect — is fixed at 0 and the fit says so: the peak formula assumes neither is negative).
Uncertainty: standard errors from the residuals (s² (JᵀJ)⁻¹ at the solution, the usual nonlinear
least-squares estimate) and 95% intervals with Student's t on n − p degrees of freedom. Every
measurement window of every trial is an observation, so a sweep over 4 worker counts has dozens of
degrees of freedom; windows of one trial share its conditions, so the intervals lean narrow.

Why hand-written: scipy is not a dependency (``curve_fit`` would be these 40 lines plus a large
install); the problem is three parameters and a closed-form start.

**The plan** (:func:`make_plan`): how many workers and hosts like the profile's serve a target rate
within the latency objective — from the profile's ``online:`` section (the max rate at the objective,
measured per configuration) and the fit (how the rate scales with workers on one host). Without an
``online:`` section there is no plan: closed-loop throughput is not a rate within a latency objective
(queueing at the knee is exactly what it does not measure), so ``tuner plan`` says to run
``tuner bench --online`` first (exit 2) rather than over-promise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.backends import backend
from tuner.errors import BadInput, TunerError

if TYPE_CHECKING:
    from tuner.profile import Online, ScalingProfile

__all__ = [
    "EXTRAPOLATION_LIMIT",
    "MEMORY_SHARE",
    "MIN_FIT_WORKERS",
    "Plan",
    "UslFit",
    "fit_usl",
    "make_plan",
    "t_quantile",
]

#: Distinct worker counts a fit needs (3 parameters).
MIN_FIT_WORKERS = 3
#: The plan never puts more workers on a host than this many times the most measured.
EXTRAPOLATION_LIMIT = 2.0
#: Share of a host's memory the workers may take (the rest: the OS, the serving process).
MEMORY_SHARE = 0.8

# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; 1.96 beyond.
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 22: 2.074, 24: 2.064, 26: 2.056, 28: 2.048, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def t_quantile(dof: int) -> float:
    """Student's t 0.975 quantile for ``dof`` degrees of freedom (the next tabulated dof down)."""
    if dof < 1:
        return math.inf
    keys = [k for k in _T975 if k <= dof]
    return _T975[max(keys)] if dof <= 120 else 1.96


@dataclass(frozen=True)
class UslFit:
    """A fitted Universal Scalability Law, its uncertainty and its residuals."""

    lam: float  # λ, items/s of one worker
    sigma: float  # contention
    kappa: float  # coherency
    lam_se: float | None
    sigma_se: float | None  # None: fixed at 0, or no degrees of freedom left
    kappa_se: float | None
    dof: int
    workers: tuple[int, ...]  # distinct worker counts measured
    observations: int
    # (workers, median measured, fitted, relative residual of the median)
    residuals: tuple[tuple[int, float, float, float], ...]
    fixed: tuple[str, ...] = ()  # parameters held at 0 (their free fit was negative)

    def predict(self, n: float) -> float:
        """Throughput the fit gives for ``n`` workers."""
        return self.lam * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    def ci(self, name: str) -> tuple[float, float] | None:
        """95% interval of ``sigma``, ``kappa`` or ``lam`` (None without a standard error)."""
        se = getattr(self, f"{name}_se")
        if se is None or not math.isfinite(se):
            return None
        v, t = getattr(self, name), t_quantile(self.dof)
        return (v - t * se, v + t * se)

    @property
    def peak_workers(self) -> float | None:
        """N* = √((1 − σ)/κ), where throughput peaks; None when it never does (κ = 0 or σ >= 1)."""
        if self.kappa <= 0 or self.sigma >= 1:
            return None
        return math.sqrt((1 - self.sigma) / self.kappa)

    def best_workers(self, cap: int) -> int:
        """The integer worker count in 1..cap with the highest fitted throughput."""
        return max(range(1, max(1, cap) + 1), key=self.predict)

    def describe(self) -> str:
        """``σ 0.031 ± 0.004 (contention), κ 0.0012 ± 0.0003 (coherency); peaks at 28 workers``."""

        def pm(name: str) -> str:
            v = getattr(self, name)
            if name in self.fixed:
                return f"{fmt.sig(v)} (held at 0: its free fit was negative)"
            ci = self.ci(name)
            return (
                f"{fmt.sig(v)} ± {fmt.sig((ci[1] - ci[0]) / 2, 2)}"
                if ci
                else f"{fmt.sig(v)} (no uncertainty: no degrees of freedom)"
            )

        peak = self.peak_workers
        kci = self.ci("kappa")
        if peak is None:
            where = "no peak (κ = 0: throughput levels off at λ/σ)" if self.sigma > 0 else "no peak (linear)"
        elif kci is not None and kci[0] <= 0:
            where = f"no peak established (κ's interval reaches 0; at the fitted κ it would be {peak:.1f} workers)"
        elif peak > max(self.workers):
            where = f"scaling would peak at {peak:.1f} workers, past the {max(self.workers)} measured (extrapolated)"
        else:
            where = f"scaling peaks at {peak:.1f} workers on this host"
        fit = ", ".join(
            f"{n}: {fmt.rate(obs)} vs {fmt.rate(fx)} ({res:+.1%})" for n, obs, fx, res in self.residuals
        )
        return (
            f"USL over workers {', '.join(map(str, self.workers))} ({self.observations} windows): "
            f"λ {fmt.rate(self.lam)}/s, σ {pm('sigma')} (contention), κ {pm('kappa')} (coherency); {where}. "
            f"Measured vs fitted: {fit}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda": self.lam,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "lambda_se": self.lam_se,
            "sigma_se": self.sigma_se,
            "kappa_se": self.kappa_se,
            "sigma_ci": self.ci("sigma"),
            "kappa_ci": self.ci("kappa"),
            "dof": self.dof,
            "workers": list(self.workers),
            "observations": self.observations,
            "peak_workers": self.peak_workers,
            "fixed": list(self.fixed),
            "residuals": [
                {"workers": n, "measured": m, "fitted": f, "relative": r} for n, m, f, r in self.residuals
            ],
        }


class NotEnoughPoints(TunerError):
    """Fewer distinct worker counts than the fit's three parameters."""


def fit_usl(points: Sequence[tuple[float, float]]) -> UslFit:
    """Fit the USL to (workers, items/s) observations (replicates welcome); see the module docstring.

    Raises :class:`NotEnoughPoints` with fewer than :data:`MIN_FIT_WORKERS` distinct worker counts.
    """
    import numpy as np

    obs = [(float(n), float(x)) for n, x in points if n >= 1 and x > 0 and math.isfinite(x)]
    distinct = sorted({int(n) for n, _ in obs})
    if len(distinct) < MIN_FIT_WORKERS:
        shown = ", ".join(map(str, distinct)) or "none"
        raise NotEnoughPoints(
            f"a scalability fit needs throughput at >= {MIN_FIT_WORKERS} worker counts (measured: {shown})"
        )
    N = np.array([o[0] for o in obs])
    X = np.array([o[1] for o in obs])
    fixed: list[str] = []
    free = ["lam", "sigma", "kappa"]
    theta = _linear_start(N, X, free)
    for _ in range(3):  # hold a negative parameter at 0 and refit the rest
        theta = _gauss_newton(N, X, theta, free)
        neg = [p for p in ("sigma", "kappa") if p in free and theta[p] < 0]
        if not neg:
            break
        for p in neg:
            free.remove(p)
            fixed.append(p)
            theta[p] = 0.0
        theta = _gauss_newton(N, X, _linear_start(N, X, free), free)
    pred = _model(N, theta)
    r = pred / X - 1
    dof = len(obs) - len(free)
    se: dict[str, float | None] = {p: None for p in ("lam", "sigma", "kappa")}
    if dof > 0:
        J = _jacobian(N, X, theta, free)
        s2 = float((r * r).sum()) / dof
        try:
            cov = s2 * np.linalg.inv(J.T @ J)
            for i, name in enumerate(free):
                se[name] = float(math.sqrt(max(cov[i, i], 0.0)))
        except np.linalg.LinAlgError:
            pass
    from tuner.stats import median

    residuals = []
    for n in distinct:
        m = median(X[np.equal(N, n)])
        f = float(_model(np.array([float(n)]), theta)[0])
        residuals.append((n, round(m, 4), round(f, 4), round(f / m - 1 if m else 0.0, 4)))
    return UslFit(
        lam=float(theta["lam"]),
        sigma=float(theta["sigma"]),
        kappa=float(theta["kappa"]),
        lam_se=se["lam"],
        sigma_se=se["sigma"],
        kappa_se=se["kappa"],
        dof=dof,
        workers=tuple(distinct),
        observations=len(obs),
        residuals=tuple(residuals),
        fixed=tuple(fixed),
    )


def _model(N: Any, th: dict[str, float]) -> Any:
    return th["lam"] * N / (1 + th["sigma"] * (N - 1) + th["kappa"] * N * (N - 1))


def _linear_start(N: Any, X: Any, free: list[str]) -> dict[str, float]:
    """Weighted least squares on N/X = c0 + c1 (N−1) + c2 N(N−1) (the free terms only)."""
    import numpy as np

    cols = [np.ones_like(N)]
    if "sigma" in free:
        cols.append(N - 1)
    if "kappa" in free:
        cols.append(N * (N - 1))
    A = np.stack(cols, axis=1)
    y = N / X
    w = 1.0 / y  # relative residuals: a window's noise scales with its throughput
    c, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    c0 = c[0] if c[0] > 0 else float(np.median(y))
    th = {"lam": 1.0 / c0, "sigma": 0.0, "kappa": 0.0}
    k = 1
    for p in ("sigma", "kappa"):
        if p in free:
            th[p] = float(c[k] / c0)
            k += 1
    return th


def _jacobian(N: Any, X: Any, th: dict[str, float], free: list[str]) -> Any:
    """d(relative residual)/d(free parameters), one row per observation."""
    import numpy as np

    lam, s, k = th["lam"], th["sigma"], th["kappa"]
    D = 1 + s * (N - 1) + k * N * (N - 1)
    d = {
        "lam": N / D,
        "sigma": -lam * N * (N - 1) / D**2,
        "kappa": -lam * N * N * (N - 1) / D**2,
    }
    return np.stack([d[p] / X for p in free], axis=1)


def _gauss_newton(N: Any, X: Any, th: dict[str, float], free: list[str], iters: int = 50) -> dict[str, float]:
    """Minimise Σ (X̂/X − 1)² over the free parameters from ``th`` (step-halving Gauss–Newton)."""
    import numpy as np

    th = dict(th)

    def cost(t: dict[str, float]) -> float:
        r = _model(N, t) / X - 1
        return float((r * r).sum())

    c = cost(th)
    for _ in range(iters):
        J = _jacobian(N, X, th, free)
        r = _model(N, th) / X - 1
        step, *_ = np.linalg.lstsq(J, -r, rcond=None)
        scale = 1.0
        while scale > 1e-6:
            trial = dict(th)
            for i, p in enumerate(free):
                trial[p] = th[p] + scale * float(step[i])
            if trial["lam"] > 0 and (ct := cost(trial)) <= c:
                break
            scale /= 2
        else:
            break
        improvement = c - ct
        th, c = trial, ct
        if improvement <= 1e-15 * max(c, 1e-300):
            break
    return th


# ------------------------------------------------------------------------------------------ the plan


@dataclass
class Plan:
    """Workers and hosts for a target rate, with the assumptions said in words."""

    rate: float  # requests/s to serve
    objective_ms: float
    headroom_pct: float
    hosts: int
    workers_per_host: int
    total_workers: int
    per_host_rate: float  # requests/s one host sustains at the objective (before headroom)
    planned_per_host: float  # after the headroom
    per_host_source: str  # "measured" | "fit"
    configuration: dict[str, Any]
    fit: UslFit | None
    fit_note: str
    words: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)  # per workers-per-host: rate, source
    #: what one host costs per hour (``--cost-per-hour``, any currency); None: no cost asked for
    cost_per_host_hour: float | None = None

    @property
    def cost_per_hour(self) -> float | None:
        """What the plan's hosts cost per hour (hosts × the price of one)."""
        return None if self.cost_per_host_hour is None else self.hosts * self.cost_per_host_hour

    @property
    def cost_per_million(self) -> float | None:
        """What a million requests cost at the target rate: hosts × price / (rate × 3600) × 10⁶."""
        per_hour = self.cost_per_hour
        return None if per_hour is None else per_hour / (self.rate * 3600.0) * 1e6

    def hosts_with(self, workers: int) -> int | None:
        """Hosts needed at ``workers`` workers per host (None: that count is not among the options)."""
        for o in self.options:
            if o["workers"] == workers and o["planned"] > 0:
                return max(1, math.ceil(self.rate / o["planned"]))
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "objective_p99_ms": self.objective_ms,
            "headroom_pct": self.headroom_pct,
            "hosts": self.hosts,
            "workers_per_host": self.workers_per_host,
            "total_workers": self.total_workers,
            "per_host_rate": self.per_host_rate,
            "planned_per_host": self.planned_per_host,
            "per_host_source": self.per_host_source,
            "configuration": self.configuration,
            "fit": self.fit.to_dict() if self.fit is not None else None,
            "fit_note": self.fit_note,
            "options": self.options,
            "cost_per_host_hour": self.cost_per_host_hour,
            "cost_per_hour": self.cost_per_hour,
            "cost_per_million_requests": self.cost_per_million,
            "words": self.words,
            "assumptions": self.assumptions,
            "warnings": self.warnings,
        }


def _rate_at(profile: ScalingProfile, objective_ms: float) -> tuple[float, str]:
    """The winner's max rate at ``objective_ms``: measured by the search at its own objective, or
    read off the measured curve for another objective."""
    online = profile.online
    assert online is not None
    if math.isclose(objective_ms, online.objective_p99_ms, rel_tol=1e-9):
        return online.max_rate_at_slo, "the rate search at this objective"
    ok = [p for p in online.curve if p.keeps_up and p.p99_ms is not None and p.p99_ms <= objective_ms]
    if not ok:
        lows = [p for p in online.curve if p.p99_ms is not None]
        best = min(lows, key=lambda p: p.p99_ms or 0.0) if lows else None
        seen = (
            f"; its lowest p99 measured was {fmt.ms(best.p99_ms)} at {fmt.rate(best.rate)}/s" if best else ""
        )
        raise TunerError(
            f"no measured rate keeps p99 <= {objective_ms:g} ms on the profile's configuration{seen}"
            f"{_other_candidates(profile, objective_ms)}: run tuner bench --online --p99-ms {objective_ms:g}"
        )
    top = max(ok, key=lambda p: p.rate)
    how = (
        f"the measured curve's highest rate with p99 <= {objective_ms:g} ms "
        f"(the search ran at {online.objective_p99_ms:g} ms; {len(online.curve)} measured rates: a coarser figure)"
    )
    return top.rate, how


def _others(profile: ScalingProfile) -> list[Any]:
    """The online search's other candidates with a sustainable rate: every configuration × batching
    searched but the profile's own (a shorter batch delay of the same pool is another candidate)."""
    online = profile.online
    assert online is not None
    own = (
        online.backend,
        online.workers,
        online.threads_per_worker,
        online.max_batch_size,
        online.max_batch_delay_ms,
    )
    return [
        c for c in online.candidates
        if c.p99_ms is not None and c.max_rate_at_slo > 0
        and (c.backend, c.workers, c.threads_per_worker, c.max_batch_size, c.max_batch_delay_ms) != own
    ]  # fmt: skip


def _label(c: Any) -> str:
    return f"{c.backend} ×{c.workers} · batch ≤{c.max_batch_size} · delay {c.max_batch_delay_ms:g} ms"


def _other_candidates(profile: ScalingProfile, objective_ms: float) -> str:
    """What the online search's other candidates measured, for the message when the profile's own
    curve cannot meet ``objective_ms`` (each candidate records its p99 at its max rate)."""
    others = _others(profile)
    if not others:
        return ""
    c = min(others, key=lambda c: c.p99_ms or 0.0)
    keeps = "keeps" if c.p99_ms is not None and c.p99_ms <= objective_ms else "measured"
    return f"; another configuration searched ({_label(c)}) {keeps} p99 {fmt.ms(c.p99_ms)} at {fmt.rate(c.max_rate_at_slo)}/s"


def _faster_other(profile: ScalingProfile, objective_ms: float, rate: float) -> str | None:
    """A warning when another candidate sustained more than ``rate`` (the profile's own figure at
    ``objective_ms``) with p99 within ``objective_ms``: the plan is for the profile's configuration."""
    faster = [
        c for c in _others(profile) if (c.p99_ms or math.inf) <= objective_ms and c.max_rate_at_slo > rate
    ]
    if not faster:
        return None
    c = max(faster, key=lambda c: c.max_rate_at_slo)
    return (
        f"another configuration searched ({_label(c)}) sustained {fmt.rate(c.max_rate_at_slo)} requests/s with p99 "
        f"{fmt.ms(c.p99_ms)} <= {objective_ms:g} ms, more than this profile's {fmt.rate(rate)}/s at that objective: "
        f"tuner bench --online --p99-ms {objective_ms:g} searches for this objective"
    )


def make_plan(
    profile: ScalingProfile,
    rate: float,
    *,
    p99_ms: float | None = None,
    headroom_pct: float = 30.0,
    cost_per_hour: float | None = None,
) -> Plan:
    """Workers and hosts like the profile's for ``rate`` requests/s within the p99 objective;
    ``cost_per_hour`` (what one host costs, any currency) adds the plan's cost.

    Raises :class:`BadInput` when the profile has no ``online:`` section or an argument is out of
    range, and :class:`TunerError` when no measured rate meets the objective.
    """
    online = _checked_online(profile, rate, headroom_pct, cost_per_hour)
    objective = online.objective_p99_ms if p99_ms is None else p99_ms
    r_ref, source_ref = _rate_at(profile, objective)
    keep = 1 - headroom_pct / 100.0
    measured = _measured_rates(online, objective, r_ref)
    fit, fit_note = _scaling_fit(online)
    cap, limit, rss = _workers_cap(profile, measured, fit)
    options = _options(cap, measured, fit, online.workers, r_ref, keep)
    pick, best, hosts = _pick(options, rate)
    n = int(pick["workers"])
    warnings: list[str] = []
    if not math.isclose(objective, online.objective_p99_ms, rel_tol=1e-9):  # read off the curve
        other = _faster_other(profile, objective, r_ref)
        if other is not None:
            warnings.append(other)
    measured_max = max([*measured, *(fit.workers if fit else ())])
    if pick["source"] == "fit" and n > measured_max:
        warnings.append(
            f"{n} workers per host is past the measured range (at most {measured_max}): the fit's "
            f"prediction ({fmt.rate(pick['rate'])}/s), not a measurement — measure it before relying on it"
        )
    cfg = {
        "backend": online.backend,
        "workers_per_host": n,
        "threads_per_worker": online.threads_per_worker,
        "max_batch_size": online.max_batch_size,
        "max_batch_delay_ms": online.max_batch_delay_ms,
        "max_pending_per_host": _scaled_pending(online.max_pending, n, online.workers),
    }
    plan = Plan(
        rate=rate,
        objective_ms=objective,
        headroom_pct=headroom_pct,
        hosts=hosts,
        workers_per_host=n,
        total_workers=hosts * n,
        per_host_rate=round(float(pick["rate"]), 3),
        planned_per_host=round(float(pick["planned"]), 3),
        per_host_source=str(pick["source"]),
        configuration=cfg,
        fit=fit,
        fit_note=fit_note,
        assumptions=_assumptions(profile, headroom_pct),
        warnings=warnings,
        options=[{k: (round(v, 3) if isinstance(v, float) else v) for k, v in o.items()} for o in options],
        cost_per_host_hour=cost_per_hour,
    )
    why_cap = _why_cap(profile, limit, fit is not None, rss)
    plan.words = _words(plan, pick, best, (cap, why_cap), source_ref, online.workers)
    return plan


def _checked_online(
    profile: ScalingProfile, rate: float, headroom_pct: float, cost_per_hour: float | None
) -> Online:
    """The profile's ``online:`` section, once the arguments are known to be in range."""
    online = profile.online
    if online is None:
        raise BadInput(
            f"profile {profile.name!r} has no online: section — run tuner bench --online --p99-ms MS "
            "--out PROFILE first (a capacity plan needs the max rate within a latency objective)"
        )
    if not (rate > 0 and math.isfinite(rate)):
        raise BadInput(f"--rate must be a finite number > 0 (got {rate})")
    if not (0 <= headroom_pct < 100 and math.isfinite(headroom_pct)):
        raise BadInput(f"--headroom must be a percentage from 0 to below 100 (got {headroom_pct})")
    if cost_per_hour is not None and not (cost_per_hour >= 0 and math.isfinite(cost_per_hour)):
        raise BadInput(f"--cost-per-hour must be a finite number >= 0 (got {cost_per_hour})")
    return online


def _measured_rates(online: Online, objective: float, r_ref: float) -> dict[int, float]:
    """Max rate at the objective by workers per host, as measured: the winner, and at the search's
    own objective the other candidates of the same backend and threads."""
    measured: dict[int, float] = {online.workers: r_ref}
    if math.isclose(objective, online.objective_p99_ms, rel_tol=1e-9):
        for c in online.candidates:
            if (
                c.backend == online.backend
                and c.threads_per_worker == online.threads_per_worker
                and c.max_rate_at_slo > 0
                and c.workers != online.workers
            ):
                measured[c.workers] = max(measured.get(c.workers, 0.0), c.max_rate_at_slo)
    return measured


def _scaling_fit(online: Online) -> tuple[UslFit | None, str]:
    """The USL fitted to the closed-loop throughput by workers, and a sentence about it."""
    sc = online.scaling
    if sc is None or not sc.points:
        return None, "no closed-loop throughput by workers in the profile: no scalability fit"
    obs = [(p.workers, x) for p in sc.points for x in (p.windows or [p.throughput])]
    try:
        fit = fit_usl(obs)
    except NotEnoughPoints as e:
        return None, f"{e}: no scalability fit, so the plan assumes no more workers per host than measured"
    return fit, fit.describe()


def _workers_cap(
    profile: ScalingProfile, measured: dict[int, float], fit: UslFit | None
) -> tuple[int, str, float | None]:
    """The most workers one host may run, what caps it, and the memory per worker used for that."""
    online = profile.online
    assert online is not None
    host, threads = profile.host, online.threads_per_worker
    measured_max = max([*measured, *(fit.workers if fit else ())])
    caps = {"extrapolation": int(EXTRAPOLATION_LIMIT * measured_max) if fit else measured_max}
    if online.workers * threads <= host.usable_cores:  # CPU-bound: the cores cap the workers
        caps["cores"] = max(1, host.usable_cores // threads)
    rss = _per_worker_mb(profile)
    if rss:
        caps["memory"] = max(1, int(MEMORY_SHARE * host.memory_total_gb * 1000 / rss))
    limit = min(caps, key=lambda k: caps[k])
    return max(1, caps[limit]), limit, rss


def _why_cap(profile: ScalingProfile, limit: str, fitted: bool, rss: float | None) -> str:
    """Why the workers per host stop where they do, in words."""
    host = profile.host
    threads = profile.online.threads_per_worker if profile.online is not None else 1
    if limit == "cores":
        return f"the {host.usable_cores} usable cores at {threads} thread(s) per worker"
    if limit == "memory":
        return f"memory ({host.memory_total_gb:g} GB × {MEMORY_SHARE:.0%} / {rss or 0:.0f} MB per worker)"
    if fitted:
        return f"{EXTRAPOLATION_LIMIT:g}× the most workers measured"
    return "the workers measured (no fit to go further)"


def _options(
    cap: int, measured: dict[int, float], fit: UslFit | None, w_ref: int, r_ref: float, keep: float
) -> list[dict[str, Any]]:
    """Rate at the objective for each workers-per-host count 1..cap: measured, else the fit's scaling
    of the measured one; ``planned`` keeps the headroom."""
    options: list[dict[str, Any]] = []
    for n in range(1, cap + 1):
        if n in measured:
            options.append({"workers": n, "rate": measured[n], "source": "measured"})
        elif fit is not None:
            options.append(
                {"workers": n, "rate": r_ref * fit.predict(n) / fit.predict(w_ref), "source": "fit"}
            )
    if not options:  # the measured configuration is beyond this host's cap (it fit when measured)
        options.append({"workers": w_ref, "rate": r_ref, "source": "measured"})
    for o in options:
        o["planned"] = o["rate"] * keep
    return options


def _pick(options: list[dict[str, Any]], rate: float) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The workers per host and hosts: the fewest workers one host needs, else the best host repeated."""
    best = max(options, key=lambda o: o["planned"])
    one_host = [o for o in options if o["planned"] >= rate]
    if one_host:
        return min(one_host, key=lambda o: o["workers"]), best, 1
    hosts = math.ceil(rate / best["planned"]) if best["planned"] > 0 else 0
    if hosts == 0:
        raise TunerError("the profile's max rate at the objective is 0: nothing to plan with")
    return best, best, hosts


def _words(
    plan: Plan,
    pick: dict[str, Any],
    best: dict[str, Any],
    capped: tuple[int, str],
    source_ref: str,
    w_ref: int,
) -> list[str]:
    """The plan in sentences: what to run, why so many per host (``capped``: the cap and its
    reason), the fit, and the cost if asked; ``w_ref`` is the measured worker count."""
    cfg = plan.configuration
    hosts, n, threads = plan.hosts, plan.workers_per_host, cfg["threads_per_worker"]
    cap, why_cap = capped
    peak = plan.fit.peak_workers if plan.fit is not None else None
    words = [
        f"To serve {fmt.rate(plan.rate)} requests/s with p99 <= {plan.objective_ms:g} ms and {plan.headroom_pct:g}% headroom: "
        f"{hosts} host{'s' if hosts != 1 else ''} like this one × {n} worker{'s' if n != 1 else ''} "
        f"= {hosts * n} worker{'s' if hosts * n != 1 else ''} ({cfg['backend']}, {threads} thread{'s' if threads != 1 else ''} each, "
        f"batches <= {cfg['max_batch_size']}, "
        f"batch delay {cfg['max_batch_delay_ms']:g} ms).",
        f"  One host sustains {fmt.rate(pick['rate'])} requests/s at the objective with {n} worker{'s' if n != 1 else ''} "
        f"({'measured' if pick['source'] == 'measured' else 'scaled from the measured ' + str(w_ref) + ' by the fit'}); "
        f"planned at {fmt.rate(pick['planned'])}/s to keep {plan.headroom_pct:g}% headroom.",
        f"  Max rate at the objective from {source_ref}.",
        f"  Workers per host capped at {cap} by {why_cap}"
        + (f"; the fit peaks at {peak:.1f}" if peak is not None else "")
        + (
            "; more workers per host would not help, so the plan adds hosts."
            if hosts > 1 and n == best["workers"] and n < cap
            else "."
            if hosts == 1
            else "; the plan adds hosts beyond that."
        ),
        f"  {plan.fit_note}",
    ]
    if plan.cost_per_host_hour is not None:
        words.append(_cost_words(plan))
    return words


def _cost_words(plan: Plan) -> str:
    """``Cost: 6 hosts × 0.2 per hour = 1.2 per hour; 0.0067 per million requests at 50.0k/s ...``."""
    price, per_hour, per_million = plan.cost_per_host_hour, plan.cost_per_hour, plan.cost_per_million
    assert price is not None and per_hour is not None and per_million is not None
    keep = 100 - plan.headroom_pct
    return (
        f"  Cost: {plan.hosts} host{'s' if plan.hosts != 1 else ''} × {price:g} per hour = {fmt.sig(per_hour, 4)} per hour; "
        f"{fmt.sig(per_million, 4)} per million requests at {fmt.rate(plan.rate)} requests/s "
        f"(hosts × price / rate; each host planned at {keep:g}% of its max rate, so the "
        f"{plan.headroom_pct:g}% headroom is in the price)."
    )


def _assumptions(profile: ScalingProfile, headroom_pct: float) -> list[str]:
    """What the plan takes for granted, in words."""
    online = profile.online
    assert online is not None
    host = profile.host
    inp = profile.model.input
    item = f"items {inp.item}" if inp is not None and inp.item else "its items"
    src = inp.source if inp is not None else "the measured input"
    return [
        f"hosts like this one: {host.usable_cores} usable cores, {host.memory_total_gb:g} GB, "
        f"{host.cpu_model} ({host.platform} {host.machine})",
        f"the measured model {profile.model.spec} with the measured inputs ({item}, {src}), "
        f"{online.arrivals} arrivals of {online.request_size} item{'s' if online.request_size != '1' else ''} per request",
        "hosts share no bottleneck: a load balancer spreads requests evenly and each host serves its "
        "share independently, so rates add across hosts",
        f"the objective is a p99 per host; each host runs at most {100 - headroom_pct:g}% of its measured max rate",
    ]


def _per_worker_mb(profile: ScalingProfile) -> float | None:
    rss = profile.evidence.peak_rss_mb
    if rss is None:
        return None
    online = profile.online
    assert online is not None
    if backend(online.backend).own_processes and rss.per_worker:
        return rss.per_worker
    if rss.total:  # workers in the caller's process: the one process holds every worker
        return rss.total / max(1, profile.recommended.workers)
    return None


def _scaled_pending(pending: int, n: int, measured_workers: int) -> int:
    """max_pending for ``n`` workers: the measured bound scaled by the pool (Little's law per worker)."""
    return max(1, math.ceil(pending * n / max(1, measured_workers)))
