"""The report's charts, built from :class:`~tuner.report.view.Run` values (one run, or two overlaid).

Each function returns a :class:`Figure` (the SVG, its legend and a caption in words) or None when
the run has nothing to draw; the page says why in that case. In a comparison the first run is drawn
filled with solid lines, the second hollow with dashed lines, the same configuration in the same
colour and marker in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuner.report.svg import (
    SHAPES,
    Axis,
    Callout,
    Dot,
    DotChart,
    DotRow,
    Point,
    Ref,
    Series,
    XYChart,
    swatch,
)
from tuner.report.view import PERCENTILES, Run, Step, Trial, fmt_ms, fmt_rate

GREY = 7  # palette slot for "everything else" (grey in both schemes)


@dataclass
class Figure:
    """One chart as the page shows it."""

    id: str
    title: str
    svg: str
    caption: str = ""
    legend: list[tuple[str, str]] = field(default_factory=list)  # (swatch markup, name)


def _tag(runs: list[Run], i: int) -> str:
    return f"{'AB'[i]}: " if len(runs) > 1 else ""


def _ms(x: float) -> str:
    return f"{x:g}" if x < 10 else f"{x:.0f}"


def _run_legend(runs: list[Run]) -> list[tuple[str, str]]:
    if len(runs) < 2:
        return []
    return [
        (swatch(GREY, "circle"), f"A = {runs[0].name}: filled markers, solid lines"),
        (
            swatch(GREY, "circle", hollow=True, dashed=True),
            f"B = {runs[1].name}: hollow markers, dashed lines",
        ),
    ]


def _lo(ci: tuple[float, float] | None) -> float | None:
    return ci[0] if ci else None


def _hi(ci: tuple[float, float] | None) -> float | None:
    return ci[1] if ci else None


def _ci_tip(t: Trial) -> str:
    ci = f" (95% CI {fmt_rate(t.ci[0])}–{fmt_rate(t.ci[1])})" if t.ci else ""
    return f"{t.label}: {fmt_rate(t.throughput)} items/s{ci}, p99 {fmt_ms(t.latency.get('p99'))}"


# -- throughput against workers ---------------------------------------------------------------------


def _curve_key(t: Trial, threads_vary: bool) -> str:
    threads = f" · {t.threads} thread{'s' if t.threads != 1 else ''}" if threads_vary else ""
    return f"{t.backend}{threads} · partition {t.partition}"


def throughput_chart(runs: list[Run]) -> Figure | None:
    """Throughput against workers, a line per backend and partition size (and thread count when
    the sweep varied it), 95% CIs as error bars, the recommendation starred."""
    trials = [(i, t) for i, r in enumerate(runs) for t in r.trials if t.throughput > 0]
    if not trials:
        return None
    threads_vary = len({t.threads for _, t in trials}) > 1
    keys = sorted({_curve_key(t, threads_vary) for _, t in trials}, key=_natural)
    style = {k: (n % 7, SHAPES[n % len(SHAPES)]) for n, k in enumerate(keys)}
    series: list[Series] = []
    callouts: list[Callout] = []
    for i, run in enumerate(runs):
        for k in keys:
            pts = [
                Point(t.workers, t.throughput, _lo(t.ci), _hi(t.ci), tip=_ci_tip(t), key=t.key)
                for t in run.trials
                if t.throughput > 0 and _curve_key(t, threads_vary) == k
            ]
            if pts:
                color, shape = style[k]
                series.append(Series(_tag(runs, i) + k, pts, color, shape, second=i == 1))
        callouts += [
            Callout(t.workers, t.throughput, f"{_tag(runs, i)}recommended", i == 1)
            for t in run.trials
            if t.recommended
        ]
    workers = sorted({t.workers for _, t in trials})
    x = Axis(
        "workers",
        log=workers[-1] / workers[0] >= 8,
        ticks=[float(w) for w in workers],
        fmt=lambda v: f"{v:g}",
    )
    x.fit(workers, zero=False, pad=0.08)
    y = Axis("throughput, items/s")
    y.fit([t.ci[1] if t.ci else t.throughput for _, t in trials])
    chart = XYChart(x, y, series, callouts=callouts, title="Throughput against workers")
    legend = [(swatch(*style[k]), k) for k in keys] + _run_legend(runs)
    return Figure(
        "chart-throughput",
        "Throughput against workers, per backend and partition size",
        chart.render(),
        "Each point is one trial: the median of its measurement windows, with its 95% confidence interval "
        "as an error bar; lines join the trials of one backend and partition size. ★ marks the recommendation.",
        legend,
    )


def _natural(key: str) -> tuple[str, int]:
    head, _, size = key.rpartition(" ")
    return head, int(size) if size.isdigit() else 0


# -- latency percentiles per trial ------------------------------------------------------------------

_PCT_DOTS = [
    Dot("p50", "p50", 2, "circle"),
    Dot("p90", "p90", 1, "square"),
    Dot("p95", "p95", 4, "triangle"),
    Dot("p99", "p99 (with its 95% CI)", 5, "diamond"),
]


def _latency_rows(runs: list[Run]) -> list[DotRow]:
    if len(runs) == 1:
        ordered = sorted(runs[0].trials, key=lambda t: -t.throughput)
        return [
            DotRow(
                t.label,
                {k: v for k, v in t.latency.items() if k in PERCENTILES},
                _p99ci(t),
                t.key,
                t.recommended,
            )
            for t in ordered
            if t.latency
        ]
    a = {t.key: t for t in runs[0].trials if t.latency}
    b = {t.key: t for t in runs[1].trials if t.latency}
    keys = [k for k in a if k in b or a[k].recommended] + [k for k in b if b[k].recommended and k not in a]
    rows = []
    for k in keys:
        for tag, side, second in (("A", a, False), ("B", b, True)):
            t = side.get(k)
            if t is not None:
                rows.append(
                    DotRow(f"{tag} · {t.label}", dict(t.latency), _p99ci(t), t.key, t.recommended, second)
                )
    return rows


def _p99ci(t: Trial) -> dict[str, tuple[float, float]]:
    return {"p99": t.latency_ci["p99"]} if "p99" in t.latency_ci else {}


def latency_chart(runs: list[Run]) -> Figure | None:
    """p50, p90, p95 and p99 of every trial (a comparison: of the configurations both runs measured,
    and each recommendation), fastest first."""
    rows = _latency_rows(runs)
    if not rows:
        return None
    values = [v for r in rows for v in r.values.values()] + [
        c for r in rows for ci in r.cis.values() for c in ci
    ]
    positive = [v for v in values if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    x = Axis("item latency, ms" + (" (log scale)" if log else ""), log=log)
    x.fit(values)
    chart = DotChart(
        x, _PCT_DOTS, rows, title="Latency percentiles per trial", y_label="trials, fastest first"
    )
    legend = [(swatch(d.color, d.shape), d.name) for d in _PCT_DOTS]
    if len(runs) > 1:
        legend.append((swatch(GREY, "circle", hollow=True), "B's rows: hollow markers"))
    return Figure(
        "chart-latency",
        "Latency percentiles per trial",
        chart.render(),
        "One row per trial, fastest first: item latency from submission to the result back in the caller. "
        "★ marks the recommendation.",
        legend,
    )


# -- the Pareto front -------------------------------------------------------------------------------


def pareto_front(trials: list[Trial]) -> list[Trial]:
    """Trials no other beats on both throughput (higher) and p99 (lower); what tuner recommends
    from (``tuner.bench.recommend.pareto_front``, over this page's rows)."""
    pts = [t for t in trials if t.throughput > 0 and "p99" in t.latency and t.ok] or [
        t for t in trials if t.throughput > 0 and "p99" in t.latency
    ]
    pts.sort(key=lambda t: (-t.throughput, t.latency["p99"]))
    front, best = [], math.inf
    for t in pts:
        if t.latency["p99"] < best:
            front.append(t)
            best = t.latency["p99"]
    return front


def pareto_chart(runs: list[Run]) -> Figure | None:
    """Every trial at (throughput, p99), the front joined, infeasible trials crossed out."""
    series: list[Series] = []
    callouts: list[Callout] = []
    every: list[Trial] = []
    for i, run in enumerate(runs):
        pts = [t for t in run.trials if t.throughput > 0 and "p99" in t.latency]
        every += pts
        front = pareto_front(pts)
        on = {id(t) for t in front}

        def point(t: Trial) -> Point:
            return Point(t.throughput, t.latency["p99"], tip=_ci_tip(t), key=t.key)

        rest = [t for t in pts if id(t) not in on and t.ok]
        bad = [t for t in pts if id(t) not in on and not t.ok]
        tag, second = _tag(runs, i), i == 1
        series.append(Series(f"{tag}Pareto front", [point(t) for t in front], 0, "diamond", second=second))
        series.append(Series(f"{tag}other trials", [point(t) for t in rest], GREY, "circle", False, second))
        series.append(Series(f"{tag}infeasible", [point(t) for t in bad], 5, "cross", False, second))
        callouts += [
            Callout(t.throughput, t.latency["p99"], f"{tag}recommended", second) for t in pts if t.recommended
        ]
    if not every:
        return None
    p99s = [t.latency["p99"] for t in every]
    log = min(p99s) > 0 and max(p99s) / min(p99s) > 20
    x = Axis("throughput, items/s")
    x.fit([t.throughput for t in every], zero=False)
    y = Axis("p99 item latency, ms" + (" (log scale)" if log else ""), log=log, fmt=_ms)
    y.fit(p99s)
    chart = XYChart(x, y, [s for s in series if s.points], callouts=callouts, title="Pareto front")
    names = {s.name.removeprefix("A: ").removeprefix("B: ") for s in series if s.points}
    legend = [
        (swatch(c, shape), words)
        for c, shape, name, words in (
            (0, "diamond", "Pareto front", "on the Pareto front (no trial is both faster and lower in p99)"),
            (GREY, "circle", "other trials", "other trials"),
            (5, "cross", "infeasible", "infeasible (a constraint not met)"),
        )
        if name in names
    ] + _run_legend(runs)
    return Figure(
        "chart-pareto",
        "Throughput against p99: the Pareto front",
        chart.render(),
        "Right is faster, down is lower tail latency: the front is the best trade-offs measured. ★ marks the "
        "recommendation.",
        legend,
    )


# -- faults -----------------------------------------------------------------------------------------

_FAULT_DOTS = [
    Dot("faults", "with the fault plan", 5, "cross"),
    Dot("clean", "the same configuration, clean", 2, "circle"),
]


def faults_chart(run: Run) -> Figure | None:
    """Throughput of each trial measured with the fault plan, beside the same configuration clean."""
    rows = [
        DotRow(
            t.label,
            {"faults": t.throughput, **({"clean": t.clean_throughput} if t.clean_throughput else {})},
            key=t.key,
            marked=t.recommended,
        )
        for t in sorted(run.trials, key=lambda t: -t.throughput)
        if t.faults and t.throughput > 0
    ]
    if not rows:
        return None
    x = Axis("throughput, items/s")
    x.fit([v for r in rows for v in r.values.values()])
    chart = DotChart(x, _FAULT_DOTS, rows, title="What the faults cost", y_label="trials with faults")
    return Figure(
        "chart-faults",
        "Throughput with the fault plan and without",
        chart.render(),
        "The gap between the two markers of a row is what the injected faults cost that configuration.",
        [(swatch(d.color, d.shape), d.name) for d in _FAULT_DOTS],
    )


# -- the host ---------------------------------------------------------------------------------------


def host_load_chart(run: Run, limit: float = 0.25) -> Figure | None:
    """Outside load (other processes' CPU, share of the usable cores) while each trial measured."""
    trials = [t for t in run.trials if t.outside is not None]
    if not trials:
        return None
    pts = [
        Point(
            n + 1,
            100 * (t.outside or 0.0),
            tip=f"trial {n + 1}, {t.label}: outside load {t.outside:.0%}"
            + (f", {t.discarded} of {t.windows} windows discarded as busy" if t.discarded else ""),
            key=t.key,
            shape="cross" if t.discarded else None,
        )
        for n, t in enumerate(trials)
    ]
    x = Axis(
        "trial, in the order measured",
        ticks=[float(n) for n in range(1, len(trials) + 1)] if len(trials) <= 20 else None,
    )
    x.fit([0.5, len(trials) + 0.5], zero=False, pad=0)
    y = Axis("outside load", fmt=lambda v: f"{v:g}%")
    y.fit([p.y for p in pts] + [100 * limit * 1.15])
    ref = Ref("y", 100 * limit, f"a window above {limit:.0%} is discarded and measured again", "objective")
    chart = XYChart(x, y, [Series("outside load", pts, GREY, "circle", line=False)], [ref], height=240,
                    title="Outside load per trial")  # fmt: skip
    return Figure(
        "chart-host-load",
        "How busy the host was while each trial measured",
        chart.render(),
        "CPU used by processes other than tuner and its workers (plus steal on a VM) as a share of the usable "
        "cores, mean over the windows "
        "each trial's figures come from. × marks a trial that discarded busy windows and measured again.",
        [(swatch(GREY, "circle"), "a trial"), (swatch(GREY, "cross"), "a trial with busy windows discarded")],
    )


# -- online: latency against rate ---------------------------------------------------------------------


def _step_tip(s: Step, objective: float) -> str:
    verdict = (
        "sustainable" if s.sustainable else ("p99 over the objective" if s.keeps_up else "not keeping up")
    )
    ci = f" (95% CI {_ms(s.p99_ci[0])}–{_ms(s.p99_ci[1])})" if s.p99_ci else ""
    cpu = f", CPU {s.cpu:.2g} cores" if s.cpu is not None else ""
    return (
        f"offered {fmt_rate(s.offered)}/s (intended {fmt_rate(s.rate)}/s), achieved {fmt_rate(s.achieved)}/s: "
        f"p50 {fmt_ms(s.p50)}, p99 {fmt_ms(s.p99)}{ci}{cpu} — {verdict} at p99 ≤ {objective:g} ms"
    )


def online_chart(runs: list[Run]) -> Figure | None:
    """p99 (with its CI) and p50 against the offered rate, the objective as a line, the knee marked;
    steps that were not sustainable drawn as crosses."""
    series: list[Series] = []
    refs: list[Ref] = []
    ys: list[float] = []
    xs: list[float] = []
    for i, run in enumerate(runs):
        o = run.online
        if o is None or not o.steps:
            continue
        tag, second = _tag(runs, i), i == 1
        steps = [s for s in o.steps if s.p99 is not None]
        p99 = [
            Point(s.offered, s.p99 or 0.0, _lo(s.p99_ci), _hi(s.p99_ci), tip=_step_tip(s, o.objective_ms),
                  key=f"{s.rate:g}", shape=None if s.sustainable else "cross")
            for s in steps
        ]  # fmt: skip
        p50 = [
            Point(s.offered, s.p50, tip=_step_tip(s, o.objective_ms), key=f"{s.rate:g}")
            for s in steps
            if s.p50
        ]
        series += [
            Series(f"{tag}p99", p99, 5, "circle", second=second),
            Series(f"{tag}p50", p50, 2, "square", second=second),
        ]
        refs.append(Ref("y", o.objective_ms, f"{tag}objective: p99 ≤ {o.objective_ms:g} ms", "objective"))
        if o.max_rate > 0:
            refs.append(Ref("x", o.max_rate, f"{tag}knee: {fmt_rate(o.max_rate)} requests/s", "knee"))
        xs += [s.offered for s in steps] + [o.max_rate]
        # room above the objective for the knee's label
        ys += [p.y for p in p99 + p50] + [p.hi for p in p99 if p.hi] + [o.objective_ms * 1.25]
    if not series:
        return None
    positive = [v for v in ys if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 30
    x = Axis("offered load, requests/s")
    x.fit(xs)
    y = Axis("request latency, ms" + (" (log scale)" if log else ""), log=log, fmt=_ms)
    y.fit(ys)
    chart = XYChart(x, y, series, refs, title="Latency against offered rate")
    legend = [
        (swatch(5, "circle"), "p99, sustainable step (with its 95% CI)"),
        (swatch(5, "cross"), "p99, step not sustainable"),
        (swatch(2, "square"), "p50"),
        *(_run_legend(runs) if len({s.second for s in series}) > 1 else []),
    ]
    return Figure(
        "chart-online",
        "Online: latency against offered rate",
        chart.render(),
        "Open-loop steps of the winning configuration (latency counted from each request's intended send "
        "time). The horizontal line is the objective; the vertical one, the knee: the highest rate whose "
        "step was sustainable with p99 within the objective.",
        legend,
    )


# -- the capacity plan ------------------------------------------------------------------------------


def plan_chart(run: Run) -> Figure | None:
    """Closed-loop throughput by workers and the Universal Scalability Law fitted to it."""
    plan = run.plan
    if plan is None or not plan.measured:
        return None
    pts = [
        Point(n, v, tip=f"{n} workers: {fmt_rate(v)} items/s (measured)", key=f"w{n}")
        for n, v in plan.measured
    ]
    series = [Series("measured", pts, 0, "circle", line=False)]
    if plan.fitted:
        fit = [Point(n, v) for n, v in plan.fitted]
        series.append(Series("USL fit", fit, 3, "circle", markers=False))
    x = Axis("workers", fmt=lambda v: f"{v:g}")
    x.fit([n for n, _ in plan.measured] + [n for n, _ in plan.fitted], zero=False)
    y = Axis("throughput, items/s")
    y.fit([v for _, v in plan.measured] + [v for _, v in plan.fitted])
    chart = XYChart(x, y, series, height=300, title="Scalability fit")
    return Figure(
        "chart-plan",
        "Capacity plan: throughput by workers and the scalability fit",
        chart.render(),
        "Points: closed-loop throughput measured at each worker count; line: the Universal Scalability Law "
        "fitted to it (dashed past the measured range is extrapolation).",
        [(swatch(0, "circle"), "measured"), (swatch(3, "circle"), "USL fit")] if plan.fitted else [],
    )
